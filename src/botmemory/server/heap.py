"""Keep the garbage collector's full collections short while a server runs.

A server starts with some 70,000 objects (modules, the app, the bots' flows), which
live until it stops. Every full collection scans them all: about 20 ms here during
which the event loop serves nobody, a few times a minute under load. Once started, the
server moves them out of the collector's sight (:func:`gc.freeze`), so collections
scan only what requests create; a reload of a bot, which replaces some of them, lets
the collector take the old ones first; stopping lets it see them all again.

The price: a start-up object that later becomes garbage in a reference cycle (rare: a
pool's connection replaced after a drop, say) stays until the next reload or the stop.
``gc.unfreeze`` is process-wide: of two servers in one process, the first to stop gives
the other's objects back to the collector too.
"""

from __future__ import annotations

import gc

__all__ = ["freeze_started", "refreeze", "unfreeze"]


def freeze_started() -> None:
    """Collect what start-up left behind, then keep the rest out of collections."""
    gc.collect()
    gc.freeze()


def refreeze() -> None:
    """After a reload: collect what it replaced (frozen objects are never collected)."""
    gc.unfreeze()
    freeze_started()


def unfreeze() -> None:
    """Give the collector back everything frozen (a stopping server)."""
    gc.unfreeze()
