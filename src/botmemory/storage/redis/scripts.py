"""The Lua scripts of the Redis backend: each runs atomically and names every key in KEYS.

Guards compare strings written by :mod:`botmemory.storage.redis.layout` (times are
``repr(float)``), so no float is ever parsed to decide whether a record changed.
"""

from __future__ import annotations

from typing import Final

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from botmemory.storage.redis.commit import COMMIT_TURN

__all__ = ["Scripts"]

RELEASE: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

RENEW: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

UPDATE_USER_VARS: Final = """
-- KEYS[1]: due:user-vars; KEYS[i + 1]: user hash of update i
-- ARGV per update: name, guard, packed record ('' deletes), expires_at ('' none), member,
-- version ('' for none: the guard alone)
-- The guard is the start of the record after its version line; a record without one
-- (layout 1) has version 1.
local applied = {}
for i = 1, #KEYS - 1 do
    local a, hash = (i - 1) * 6, KEYS[i + 1]
    local current = redis.call('HGET', hash, ARGV[a + 1])
    local version = '1'
    if current and string.byte(current, 1) == 118 then  -- 'v': the version, then the rest
        local line = string.find(current, '\\n', 1, true)
        version = string.sub(current, 2, line - 1)
        current = string.sub(current, line + 1)
    end
    if current and string.sub(current, 1, #ARGV[a + 2]) == ARGV[a + 2]
        and (ARGV[a + 6] == '' or ARGV[a + 6] == version) then
        if ARGV[a + 3] == '' then
            redis.call('HDEL', hash, ARGV[a + 1])
        else
            redis.call('HSET', hash, ARGV[a + 1], ARGV[a + 3])
        end
        if ARGV[a + 4] == '' then
            redis.call('ZREM', KEYS[1], ARGV[a + 5])
        else
            redis.call('ZADD', KEYS[1], ARGV[a + 4], ARGV[a + 5])
        end
        applied[#applied + 1] = i
    end
end
return applied
"""

DELETE_SESSIONS: Final = """
-- KEYS[1]: due:sessions, KEYS[2]: due:temps; then per session its record,
-- session variables, temp variables and the user's set of sessions
-- ARGV per session: last_seen guard, session key
local deleted = 0
for i = 0, (#KEYS - 2) / 4 - 1 do
    local k, a = 2 + i * 4, i * 2
    if redis.call('HGET', KEYS[k + 1], 'seen') == ARGV[a + 1] then
        redis.call('DEL', KEYS[k + 1], KEYS[k + 2], KEYS[k + 3])
        redis.call('SREM', KEYS[k + 4], ARGV[a + 2])
        redis.call('ZREM', KEYS[1], ARGV[a + 2])
        redis.call('ZREM', KEYS[2], ARGV[a + 2])
        deleted = deleted + 1
    end
end
return deleted
"""

CLEAR_TEMPS: Final = """
-- KEYS[1]: due:temps; then per session its record and temp variables
-- ARGV per session: temp_expires_at guard ('' for none), session key, new version
-- Counts each timed-out temp memory once: the field 'cleared' keeps the expiry last
-- counted, so an overlapping call (another janitor run) does not count it again, while
-- one emptied by a turn since it was read (the dialog-timeout hook's) is counted here.
local cleared = 0
for i = 0, (#KEYS - 1) / 2 - 1 do
    local k, a = 1 + i * 2, i * 3
    local record, guard = KEYS[k + 1], ARGV[a + 1]
    if redis.call('EXISTS', record) == 1 then
        local current = redis.call('HGET', record, 'temp')
        local count = false
        if current and current == guard then
            redis.call('HDEL', record, 'temp')
            redis.call('DEL', KEYS[k + 2])
            redis.call('HSET', record, 'ver', ARGV[a + 3])
            count = true
        elseif not current then
            if redis.call('DEL', KEYS[k + 2]) == 1 then  -- left over: drop it
                redis.call('HSET', record, 'ver', ARGV[a + 3])
                count = true
            end
            count = count or redis.call('HGET', record, 'cleared') ~= guard
        end
        if not current or count then redis.call('ZREM', KEYS[1], ARGV[a + 2]) end
        if count then
            redis.call('HSET', record, 'cleared', guard)
            cleared = cleared + 1
        end
    end
end
return cleared
"""

UPDATE_SESSIONS: Final = """
-- KEYS[1]: due:sessions, KEYS[2]: due:temps; KEYS[i + 2]: the record of session i
-- ARGV per session: version read, session key, expires_at, temp_expires_at ('' none),
-- new version. A session that a turn or the janitor rewrote since it was read is left
-- alone, and one deleted since stays deleted. Returns the numbers of those updated.
local applied = {}
for i = 1, #KEYS - 2 do
    local a, record = (i - 1) * 5, KEYS[i + 2]
    local exists = redis.call('EXISTS', record) == 1
    if exists and (redis.call('HGET', record, 'ver') or '1') == ARGV[a + 1] then
        redis.call('HSET', record, 'expires', ARGV[a + 3], 'ver', ARGV[a + 5])
        redis.call('ZADD', KEYS[1], ARGV[a + 3], ARGV[a + 2])
        if ARGV[a + 4] == '' then
            redis.call('HDEL', record, 'temp')
            redis.call('ZREM', KEYS[2], ARGV[a + 2])
        else
            redis.call('HSET', record, 'temp', ARGV[a + 4])
            redis.call('ZADD', KEYS[2], ARGV[a + 4], ARGV[a + 2])
        end
        applied[#applied + 1] = i
    end
end
return applied
"""

DELETE_EXPIRED_KVS: Final = """
-- KEYS[1]: due:kvs, KEYS[2]: kvs-keys, KEYS[i + 2]: data key of name i
-- ARGV[1]: now; ARGV[i + 1]: name i
local now, deleted = tonumber(ARGV[1]), 0
for i = 1, #KEYS - 2 do
    local score = redis.call('ZSCORE', KEYS[1], ARGV[i + 1])
    if score and tonumber(score) <= now then
        redis.call('DEL', KEYS[i + 2])
        redis.call('ZREM', KEYS[1], ARGV[i + 1])
        redis.call('ZREM', KEYS[2], ARGV[i + 1])
        deleted = deleted + 1
    end
end
return deleted
"""

PURGE: Final = """
-- Drop index entries whose record is gone (Redis expired it on its own).
-- KEYS[1]: the index; KEYS[i + 1]: the key that held entry i
-- ARGV per entry: hash field ('' for the whole key), member
local purged = 0
for i = 1, #KEYS - 1 do
    local field, gone = ARGV[i * 2 - 1]
    if field == '' then
        gone = redis.call('EXISTS', KEYS[i + 1]) == 0
    else
        gone = redis.call('HEXISTS', KEYS[i + 1], field) == 0
    end
    if gone then purged = purged + redis.call('ZREM', KEYS[1], ARGV[i * 2]) end
end
return purged
"""


class Scripts:
    """Every script, registered on one client (loaded into Redis on first use)."""

    def __init__(self, client: Redis) -> None:
        self.release: AsyncScript = client.register_script(RELEASE)
        """Delete a lease if it still holds our token."""
        self.renew: AsyncScript = client.register_script(RENEW)
        """Extend a lease if it still holds our token."""
        self.update_user_vars: AsyncScript = client.register_script(UPDATE_USER_VARS)
        """Rewrite or delete user variables whose ``changed_at`` still matches."""
        self.delete_sessions: AsyncScript = client.register_script(DELETE_SESSIONS)
        """Delete sessions whose ``last_seen`` still matches, with their variables."""
        self.clear_temps: AsyncScript = client.register_script(CLEAR_TEMPS)
        """Empty temp memories whose ``temp_expires_at`` still matches (or is unset)."""
        self.update_sessions: AsyncScript = client.register_script(UPDATE_SESSIONS)
        """Set the timers of sessions whose version still matches."""
        self.delete_expired_kvs: AsyncScript = client.register_script(DELETE_EXPIRED_KVS)
        """Delete KVS keys that are still expired."""
        self.purge: AsyncScript = client.register_script(PURGE)
        """Drop index entries whose record is gone."""
        self.commit_turn: AsyncScript = client.register_script(COMMIT_TURN)
        """Check a turn's read set and apply its writes (see :mod:`.commit`)."""
