"""PostgreSQL URLs: what is refused before connecting, as a config problem (no server needed)."""

from __future__ import annotations

import pytest

from botmemory import ConfigError, Memory

pytest.importorskip("asyncpg")

from botmemory.storage.postgres.url import parse_postgres_url  # needs asyncpg


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("postgresql://u:pw@127.0.0.1:99999/db", "port '99999' is not a port"),
        ("postgresql://u:pw@127.0.0.1:0/db", "port '0' is not a port"),
        ("postgresql://u:pw@h:-1/db", "port '-1' is not a port"),
        ("postgresql://u:pw@h:abc/db", "port 'abc' is not a port"),
        ("postgresql://u:pw@h:%39%39%39%39%39/db", "port '99999' is not a port"),
        ("postgresql://u:pw@[::1]:70000/db", "port '70000' is not a port"),
        ("postgresql://u:pw@h1:5432,h2:99999/db", "port '99999' is not a port"),
        ("postgresql://u:pw@/db?port=99999", "port '99999' is not a port"),
        ("postgresql://u:pw@/db?host=h:99999", "port '99999' is not a port"),
        ("postgresql://u:pw@h1,,h2/db", "'h1,,h2' lists an empty host"),
        ("postgresql://u:pw@[::1/db", "'[' opens an IPv6 address without its ']'"),
    ],
)
async def test_what_the_driver_would_crash_on_is_refused_before_connecting(
    url: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as info:
        await Memory.open(url)
    assert problem in str(info.value)
    assert "pw" not in str(info.value)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u:pw@h:5432/db",
        "postgresql://u:pw@h:65535/db",
        "postgresql://u:pw@h1:5432,h2:5433/db",
        "postgresql://u:pw@[::1]:5432/db",
        "postgresql://u:pw@h/db",
        "postgresql:///db",
        "postgresql://u@%2Frun%2Fpostgresql/db",
        "postgresql://u@/db?host=/run/postgresql&port=5432",
    ],
)
def test_good_hosts_and_ports_are_read(url: str) -> None:
    assert parse_postgres_url(url).dsn  # no problem
