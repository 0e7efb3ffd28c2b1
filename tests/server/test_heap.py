"""A running server keeps its start-up objects out of the garbage collector's full
collections (``gc.freeze``), lets it take what a reload replaced, and gives everything
back when it stops."""

from __future__ import annotations

import gc
import sys
import weakref
from pathlib import Path

from botmemory import ManualClock
from botmemory.dialog import DialogEngine
from botmemory.server import create_app
from tests.server.conftest import write_data_dir
from tests.server.live import LiveServer


def test_a_serving_server_keeps_its_start_up_objects_out_of_collections(tmp_path: Path) -> None:
    gc.unfreeze()
    with LiveServer(write_data_dir(tmp_path / "data"), ManualClock(0.0)):
        assert gc.get_freeze_count() > 10_000  # modules, the app, the bots
    assert gc.get_freeze_count() == 0


async def test_a_reloaded_bot_is_collected_though_it_was_frozen(tmp_path: Path) -> None:
    data = write_data_dir(tmp_path / "data")
    engine = await DialogEngine.from_data_dir(data, ManualClock(0.0))
    app = create_app(engine, run_janitor=False, reload=True)
    reloader = app.state.botmemory.reloader
    async with app.router.lifespan_context(app):
        # a hook function and its module's globals hold each other: a reference cycle,
        # which only a collection frees, and frozen objects are never collected
        hook = engine.bots["welcome"].hooks["before_incoming"][0].function
        old = weakref.ref(hook)
        del hook
        assert gc.get_freeze_count() > 0
        await reloader.apply([data / "bots" / "welcome" / "flows" / "main.flow.json"])
        assert engine.bots["welcome"].hooks["before_incoming"][0].function is not old()
        assert old() is None
        assert gc.get_freeze_count() > 0
    await engine.close()


async def test_reloads_leave_no_module_of_the_replaced_bots_behind(tmp_path: Path) -> None:
    data = write_data_dir(tmp_path / "data")
    engine = await DialogEngine.from_data_dir(data, ManualClock(0.0))
    reloader = create_app(engine, run_janitor=False, reload=True).state.botmemory.reloader

    def loaded() -> set[str]:
        return {name for name in sys.modules if name.startswith("_botmemory_bots_")}

    before = loaded()
    for _ in range(3):
        await reloader.apply([data / "bots" / "welcome" / "hooks"])
    after = loaded()
    assert len(after) == len(before)
    assert after != before  # each reload imported the files anew
    await engine.close()
