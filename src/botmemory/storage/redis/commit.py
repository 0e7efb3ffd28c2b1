"""A turn's commit on Redis: one Lua script that checks the read set, then writes.

The script runs atomically (Redis runs one script at a time), so the checks and the
writes of a turn see and leave one state. It first returns "already applied" if the
commit's id is among the ids applied lately (a resent commit whose first reply was
lost); then it checks every version the turn read and computes every delta; a failed
check or a delta on a value that is not a number returns a conflict before anything
is written (a Lua script is not rolled back). Only then it writes, in the order of
:class:`~botmemory.storage.base.TurnWrite`, and records the commit id.

Arguments: every key goes in ``KEYS`` (the script touches no other); ``ARGV[1]`` is a
JSON document that names keys by their index. Versions, times and numbers travel as
strings: Lua numbers are doubles, which would round 62-bit versions and big integers.

Deltas follow Python's JSON arithmetic: two integers add exactly (decimal strings,
any size); otherwise the sum is a float, written with the fewest of 15, 16 or 17
significant digits that read back as the same float (``%.15g`` .. ``%.17g``), with
``.0`` added to a whole number, so Python's ``json`` reads the float Python would have
computed (the text may differ from ``repr``: ``1e+15`` for ``1000000000000000.0``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field, replace
from typing import Any, Final

from botmemory.durations import Seconds, parse_duration
from botmemory.storage.base import KvsDelta, KvsRecord, SessionRecord, TurnWrite, VarKey
from botmemory.storage.redis.layout import (
    BotKeys,
    KvsKeys,
    kvs_keys,
    native_ttl_ms,
    num,
    pack_kvs,
    pack_var,
    user_var_member,
)

__all__ = ["APPLIED", "COMMIT_IDS_KEPT", "COMMIT_TURN", "CONFLICT", "INVALID", "CommitArgs"]

COMMIT_IDS_KEPT: Final = parse_duration("10m")
"""How long (wall clock) a commit id is remembered: a resend within it is not applied."""

APPLIED: Final = 1
"""Script reply code: this commit id was applied before; nothing was done now."""
CONFLICT: Final = 2
"""Script reply code: a check failed; nothing was written. The message follows."""
INVALID: Final = 3
"""Script reply code: a KVS delta met a value it cannot add to; nothing was written."""

COMMIT_TURN: Final = r"""
local doc = cjson.decode(ARGV[1])
local now = tonumber(doc.now)

-- records -----------------------------------------------------------------------------
local function split_version(raw)  -- version (a string) and body; '0' for absent
    if not raw then return '0', nil end
    if string.byte(raw, 1) == 118 then  -- 'v'
        local eol = string.find(raw, '\n', 1, true)
        return string.sub(raw, 2, eol - 1), string.sub(raw, eol + 1)
    end
    return '1', raw  -- written before records had versions
end

local function live_var_value(raw)  -- the value of a packed variable not expired at now
    local _, body = split_version(raw)
    if not body then return nil end
    local a = string.find(body, '\n', 1, true)
    local b = string.find(body, '\n', a + 1, true)
    local c = string.find(body, '\n', b + 1, true)
    local expires = string.sub(body, a + 1, b - 1)
    if expires ~= '' and tonumber(expires) <= now then return nil end
    return string.sub(body, c + 1)
end

local function live_kvs_version(k)
    local version, body = split_version(redis.call('GET', KEYS[k]))
    if not body then return '0' end
    local expires = string.sub(body, 1, string.find(body, '\n', 1, true) - 1)
    if expires ~= '' and tonumber(expires) <= now then return '0' end
    return version
end

-- numbers: Python's JSON arithmetic ------------------------------------------------------
local function parse_number(text)  -- 'i' and its digits, 'f' and its value, or nil
    if text == nil then return 'i', '0' end
    if string.find(text, '^%-?%d+$') then return 'i', text end
    if text == 'Infinity' then return 'f', math.huge end
    if text == '-Infinity' then return 'f', -math.huge end
    if text == 'NaN' then return 'f', 0 / 0 end
    if string.find(text, '^%-?%d+%.?%d*[eE]?[%+%-]?%d*$') then
        local n = tonumber(text)
        if n then return 'f', n end
    end
    return nil
end

local function digit(s, i) if i > 0 then return string.byte(s, i) - 48 end return 0 end

local function add_abs(a, b)
    local out, carry, i, j = {}, 0, #a, #b
    while i > 0 or j > 0 or carry > 0 do
        local s = carry + digit(a, i) + digit(b, j)
        carry = s >= 10 and 1 or 0
        out[#out + 1] = s - carry * 10
        i, j = i - 1, j - 1
    end
    return string.reverse(table.concat(out))
end

local function sub_abs(a, b)  -- a >= b
    local out, borrow, i, j = {}, 0, #a, #b
    while i > 0 do
        local s = digit(a, i) - borrow - digit(b, j)
        borrow = s < 0 and 1 or 0
        out[#out + 1] = s + borrow * 10
        i, j = i - 1, j - 1
    end
    local r = string.gsub(string.reverse(table.concat(out)), '^0+', '')
    if r == '' then return '0' end
    return r
end

local function cmp_abs(a, b)
    if #a ~= #b then return #a < #b and -1 or 1 end
    for i = 1, #a do
        local x, y = string.byte(a, i), string.byte(b, i)
        if x ~= y then return x < y and -1 or 1 end
    end
    return 0
end

local function signed(negative, magnitude)
    if negative and magnitude ~= '0' then return '-' .. magnitude end
    return magnitude
end

local function add_int(a, b)
    local na, nb = string.sub(a, 1, 1) == '-', string.sub(b, 1, 1) == '-'
    local ma, mb = na and string.sub(a, 2) or a, nb and string.sub(b, 2) or b
    if na == nb then return signed(na, add_abs(ma, mb)) end
    local c = cmp_abs(ma, mb)
    if c == 0 then return '0' end
    if c > 0 then return signed(na, sub_abs(ma, mb)) end
    return signed(nb, sub_abs(mb, ma))
end

local function float_text(x)
    if x ~= x then return 'NaN' end
    if x == math.huge then return 'Infinity' end
    if x == -math.huge then return '-Infinity' end
    local s
    for p = 15, 17 do
        s = string.format('%.' .. p .. 'g', x)
        if tonumber(s) == x then break end
    end
    if not string.find(s, '[%.eEn]') then s = s .. '.0' end
    return s
end

local INT_MAX, INT_MIN = '18446744073709551615', '9223372036854775808'  -- 2^64-1, -(2^63)

local function in_range(int)  -- an integer's decimal string, within what JSON stores
    if string.sub(int, 1, 1) == '-' then return cmp_abs(string.sub(int, 2), INT_MIN) <= 0 end
    return cmp_abs(int, INT_MAX) <= 0
end

local function add(base, by)  -- JSON text of base + by; nil: base not a number, or out of range
    local kb, b = parse_number(base)
    if not kb then return nil end
    local kd, d = parse_number(by)
    if kb == 'i' and kd == 'i' then
        local sum = add_int(b, d)
        if in_range(sum) then return sum end
        return nil
    end
    local sum = tonumber(b) + tonumber(d)
    if sum ~= sum or sum == math.huge or sum == -math.huge then return nil end
    return float_text(sum)
end

-- checks: nothing is written before they all hold ----------------------------------------
local function conflict(message) return {2, message} end
local function invalid(message) return {3, message} end

if redis.call('ZSCORE', KEYS[doc.ids], doc.id) then return {1} end

local s = doc.session
if s and s.check then
    local found = redis.call('HMGET', KEYS[s.k], 'user', 'ver')
    local version = (not found[1]) and '0' or (found[2] or '1')
    if version ~= s.check then return conflict('session ' .. s.sk .. ' changed') end
end
for _, c in ipairs(doc.checks) do  -- c[3]: the version, or '-1' for any but absent
    local version = (split_version(redis.call('HGET', KEYS[c[1]], c[2])))
    if version ~= c[3] and (c[3] ~= '-1' or version == '0') then
        return conflict('variable ' .. c[2] .. ' changed')
    end
end
for _, c in ipairs(doc.scopes) do
    local stored, want = redis.call('HKEYS', KEYS[c[1]]), {}
    for _, name in ipairs(c[2]) do want[name] = true end
    if #stored ~= #c[2] then return conflict('a memory was changed') end
    for _, name in ipairs(stored) do
        if not want[name] then return conflict('a memory was changed') end
    end
end
for _, c in ipairs(doc.kvs) do
    if live_kvs_version(c[1]) ~= c[2] then return conflict('key ' .. c[3] .. ' changed') end
end
for _, c in ipairs(doc.prefixes) do
    local low, high = '-', '+'
    if c.p ~= '' then low, high = '[' .. c.p, '(' .. c.p .. '\255' end
    local want, live = {}, 0
    for _, e in ipairs(c.v) do want[e[1]] = e end
    for _, name in ipairs(redis.call('ZRANGE', KEYS[c.names], low, high, 'BYLEX')) do
        local due = redis.call('ZSCORE', KEYS[c.due], name)
        if (not due) or tonumber(due) > now then
            local e = want[name]
            if (not e) or live_kvs_version(e[3]) ~= e[2] then
                return conflict('keys under ' .. c.p .. ' changed')
            end
            live = live + 1
        end
    end
    if live ~= #c.v then return conflict('keys under ' .. c.p .. ' changed') end
end

-- deltas, computed over what this commit's resets, deletes and upserts leave
local shadow, cleared, results = {}, {}, {}
for _, k in ipairs(doc.resets) do cleared[k] = true end
for _, d in ipairs(doc.deletes) do shadow[d.h .. ':' .. d.n] = false end
for _, w in ipairs(doc.upserts) do shadow[w.h .. ':' .. w.n] = w.r end
for i, d in ipairs(doc.deltas) do
    local id = d.h .. ':' .. d.n
    local raw = shadow[id]
    if raw == nil and not cleared[d.h] then raw = redis.call('HGET', KEYS[d.h], d.n) end
    local text = add(live_var_value(raw or nil), d.by)
    if not text then return conflict('variable ' .. d.n .. ' is no longer a number in range') end
    results[i] = 'v' .. doc.id .. '\n' .. doc.now .. '\n' .. d.e .. '\n\n' .. text
    shadow[id] = results[i]
end

-- KVS deltas, added to what this commit's KVS writes leave, else to the stored record
local kvs_shadow, kvs_results = {}, {}
for _, w in ipairs(doc.kvs_writes) do kvs_shadow[w.d] = w.r end
for i, d in ipairs(doc.kvs_deltas) do
    local raw = kvs_shadow[d.d]
    if raw == nil then raw = redis.call('GET', KEYS[d.d]) end
    local value, expires = nil, ''
    local _, body = split_version(raw ~= '' and raw or nil)
    if body then
        local eol = string.find(body, '\n', 1, true)
        local stored = string.sub(body, 1, eol - 1)
        if stored == '' or tonumber(stored) > now then
            value, expires = string.sub(body, eol + 1), stored
        end
    end
    local text = add(value, d.by)
    if not text then
        return invalid('kvs[' .. d.key .. ']: cannot add ' .. d.by .. ' to ' .. (value or '0')
            .. ': not a number, or the sum is out of range; the turn wrote nothing')
    end
    local keep = d.e == '' and expires ~= ''  -- the live key's expiry, and its TTL, stay
    if d.e ~= '' then expires = d.e end
    kvs_results[i] = {'v' .. doc.id .. '\n' .. expires .. '\n' .. text, expires, keep}
    kvs_shadow[d.d] = kvs_results[i][1]
end

-- writes ---------------------------------------------------------------------------------
local function due_at(due, member, expires)  -- '' for no expiry
    if expires == '' then
        redis.call('ZREM', KEYS[due], member)
    else
        redis.call('ZADD', KEYS[due], expires, member)
    end
end

local function index_user(u, expires)
    redis.call('ZADD', KEYS[u.users], 0, u.o)
    due_at(u.due, u.m, expires)
end

for _, k in ipairs(doc.resets) do redis.call('DEL', KEYS[k]) end
for _, d in ipairs(doc.deletes) do
    redis.call('HDEL', KEYS[d.h], d.n)
    if d.u then redis.call('ZREM', KEYS[d.u.due], d.u.m) end
end
for _, w in ipairs(doc.upserts) do
    redis.call('HSET', KEYS[w.h], w.n, w.r)
    if w.u then index_user(w.u, w.e) end
end
for i, d in ipairs(doc.deltas) do
    redis.call('HSET', KEYS[d.h], d.n, results[i])
    if d.u then index_user(d.u, d.e) end
end
if s then
    redis.call('HSET', KEYS[s.k], 'user', s.user, 'started', s.started, 'seen', s.seen,
        'expires', s.expires, 'ver', doc.id)
    redis.call('ZADD', KEYS[s.due_s], s.expires, s.sk)
    redis.call('SADD', KEYS[s.us], s.sk)
    if s.temp == '' then
        redis.call('HDEL', KEYS[s.k], 'temp')
        redis.call('ZREM', KEYS[s.due_t], s.sk)
    else
        redis.call('HSET', KEYS[s.k], 'temp', s.temp)
        redis.call('ZADD', KEYS[s.due_t], s.temp, s.sk)
        redis.call('PEXPIRE', KEYS[s.st], s.temp_ttl)
    end
    redis.call('PEXPIRE', KEYS[s.k], s.ttl)
    redis.call('PEXPIRE', KEYS[s.sv], s.ttl)
    redis.call('PEXPIRE', KEYS[s.us], s.ttl, 'NX')  -- the set lives as long as its longest session
    redis.call('PEXPIRE', KEYS[s.us], s.ttl, 'GT')
end
for _, w in ipairs(doc.kvs_writes) do
    if w.r == '' then
        redis.call('DEL', KEYS[w.d])
        redis.call('ZREM', KEYS[w.names], w.key)
        redis.call('ZREM', KEYS[w.due], w.key)
    else
        if w.ttl == '' then
            redis.call('SET', KEYS[w.d], w.r)
        else
            redis.call('SET', KEYS[w.d], w.r, 'PX', w.ttl)
        end
        redis.call('ZADD', KEYS[w.names], 0, w.key)
        due_at(w.due, w.key, w.e)
    end
end
for i, d in ipairs(doc.kvs_deltas) do
    local record, expires, keep = unpack(kvs_results[i])
    if keep then
        redis.call('SET', KEYS[d.d], record, 'KEEPTTL')
    elseif expires == '' then
        redis.call('SET', KEYS[d.d], record)
    else
        redis.call('SET', KEYS[d.d], record, 'PX', d.ttl)
    end
    redis.call('ZADD', KEYS[d.names], 0, d.key)
    due_at(d.due, d.key, expires)
end

redis.call('ZADD', KEYS[doc.ids], doc.wall, doc.id)
redis.call('ZREMRANGEBYSCORE', KEYS[doc.ids], '-inf', '(' .. doc.oldest)
redis.call('PEXPIRE', KEYS[doc.ids], doc.keep)
local new = 0
if doc.reg then
    if redis.call('SET', KEYS[doc.reg], '1', 'NX') then new = 1 end
end
return {0, new}
"""


@dataclass
class _Keys:
    """``KEYS`` of one script call: each name once, referred to by its 1-based index."""

    names: list[str] = field(default_factory=list)
    _index: dict[str, int] = field(default_factory=dict)

    def __call__(self, name: str) -> int:
        index = self._index.get(name)
        if index is None:
            self.names.append(name)
            index = self._index[name] = len(self.names)
        return index


@dataclass(frozen=True, slots=True)
class CommitArgs:
    """``KEYS`` and ``ARGV`` of the commit script for one TurnWrite."""

    keys: list[str]
    args: list[str]
    bot_id: str | None
    """The bot whose registration the script checks (``None``: the global store)."""

    @classmethod
    def of(cls, write: TurnWrite, prefix: str, ttl_grace: Seconds) -> CommitArgs | None:
        """Build the call, or ``None`` if ``write`` checks and writes nothing.

        Native TTLs count from ``write.now`` (botmemory's clock), plus ``ttl_grace``.
        """
        home = _home(write)
        if home is None:
            return None
        return _Builder(write, prefix, ttl_grace).build(home)


def _home(write: TurnWrite) -> str | None:
    """The namespace whose ``commits`` set records this commit (``""``: global)."""
    if write.session is not None:
        return write.session.bot_id
    var_keys = [*write.deletes, *(v.key for v in write.upserts), *(d.key for d in write.deltas)]
    bots = [k.bot_id for k in var_keys] + [c.key.bot_id for c in write.checks]
    bots += [c.bot_id for c in write.scope_checks]
    kvs = [w.namespace for w in write.kvs_writes] + [c.namespace for c in write.kvs_checks]
    kvs += [d.namespace for d in write.kvs_deltas]
    kvs += [c.namespace for c in write.kvs_prefix_checks]
    found = bots + kvs
    return found[0] if found else None


class _Builder:
    def __init__(self, write: TurnWrite, prefix: str, ttl_grace: Seconds) -> None:
        self.write = write
        self.prefix = prefix
        self.ttl_grace = ttl_grace
        self.keys = _Keys()

    def ttl(self, expires_at: float | None) -> str:
        """The native TTL (ms) of a key whose data expires at ``expires_at``; '' for none."""
        if expires_at is None:
            return ""
        return str(native_ttl_ms(expires_at, self.write.now, self.ttl_grace))

    def bot(self, bot_id: str) -> BotKeys:
        return BotKeys.of(self.prefix, bot_id)

    def var(self, key: VarKey) -> int:
        return self.keys(self.bot(key.bot_id).var_hash(key))

    def user_index(self, key: VarKey) -> dict[str, Any] | None:
        if key.scope != "user":
            return None
        k = self.bot(key.bot_id)
        member = user_var_member(key.owner, key.name)
        return {"users": self.keys(k.users), "due": self.keys(k.due_user_vars), "o": key.owner,
                "m": member}  # fmt: skip

    def build(self, home: str) -> CommitArgs:
        w, version = self.write, str(self.write.version)
        home_keys: KvsKeys = kvs_keys(self.prefix, home)
        wall = time.time()
        doc: dict[str, Any] = {
            "id": version,
            "now": num(w.now),
            "ids": self.keys(home_keys.commits),
            "wall": num(wall),
            "oldest": num(wall - COMMIT_IDS_KEPT),
            "keep": str(int(COMMIT_IDS_KEPT * 1000)),
            "checks": [[self.var(c.key), c.key.name, str(c.version)] for c in w.checks],
            "scopes": [self.scope(c.scope, c.bot_id, c.owner, c.names) for c in w.scope_checks],
            "kvs": [self.kvs_check(c.namespace, c.key, c.version) for c in w.kvs_checks],
            "prefixes": [
                self.prefix_check(c.namespace, c.prefix, c.versions) for c in w.kvs_prefix_checks
            ],
            "resets": self.resets(),
            "deletes": [
                {"h": self.var(k), "n": k.name, "u": self.user_index(k)} for k in w.deletes
            ],
            "upserts": [self.upsert(v._replace(version=w.version)) for v in w.upserts],
            "deltas": [self.delta(d.key, d.by, d.expires_at) for d in w.deltas],
            "kvs_writes": [self.kvs_write(x.namespace, x.key, x.record) for x in w.kvs_writes],
            "kvs_deltas": [self.kvs_delta(d) for d in w.kvs_deltas],
        }
        if w.session is not None:
            doc["session"] = self.session(w.session, w.session_version)
        if home:
            doc["reg"] = self.keys(self.bot(home).registered)
        text = json.dumps(_without_none(doc), separators=(",", ":"))
        return CommitArgs(self.keys.names, [text], home or None)

    def scope(self, scope: str, bot_id: str, owner: str, names: AbstractSet[str]) -> list[Any]:
        key = VarKey(scope, bot_id, owner, "")  # type: ignore[arg-type]  # a Scope
        return [self.var(key), sorted(names)]

    def kvs_check(self, namespace: str, key: str, version: int) -> list[Any]:
        return [self.keys(kvs_keys(self.prefix, namespace).data(key)), str(version), key]

    def prefix_check(self, namespace: str, prefix: str, versions: Any) -> dict[str, Any]:
        ns = kvs_keys(self.prefix, namespace)
        return {
            "p": prefix,
            "names": self.keys(ns.names),
            "due": self.keys(ns.due),
            "v": [[key, str(v), self.keys(ns.data(key))] for key, v in versions],
        }

    def resets(self) -> list[int]:
        s, w = self.write.session, self.write
        if s is None or not (w.reset_session or w.reset_temp):
            return []
        k = self.bot(s.bot_id)
        temp = [self.keys(k.temp_vars(s.key))]
        return [self.keys(k.session_vars(s.key)), *temp] if w.reset_session else temp

    def delete(self, key: VarKey) -> dict[str, Any]:
        return {"h": self.var(key), "n": key.name, "u": self.user_index(key)}

    def upsert(self, var: Any) -> dict[str, Any]:
        expires = "" if var.expires_at is None else num(var.expires_at)
        index = self.user_index(var.key)
        return {"h": self.var(var.key), "n": var.key.name, "r": pack_var(var), "u": index,
                "e": expires}  # fmt: skip

    def delta(self, key: VarKey, by: float, expires_at: float | None) -> dict[str, Any]:
        expires = "" if expires_at is None else num(expires_at)
        return {"h": self.var(key), "n": key.name, "by": _number_text(by), "e": expires,
                "u": self.user_index(key)}  # fmt: skip

    def kvs_delta(self, delta: KvsDelta) -> dict[str, Any]:
        ns = kvs_keys(self.prefix, delta.namespace)
        expires = delta.expires_at
        return {
            "d": self.keys(ns.data(delta.key)),
            "names": self.keys(ns.names),
            "due": self.keys(ns.due),
            "key": delta.key,
            "by": _number_text(delta.by),
            "e": "" if expires is None else num(expires),
            "ttl": self.ttl(expires),
        }

    def session(self, s: SessionRecord, check: int | None) -> dict[str, Any]:
        k = self.bot(s.bot_id)
        temp = "" if s.temp_expires_at is None else num(s.temp_expires_at)
        return {
            "check": None if check is None else str(check),
            "sk": s.key,
            "k": self.keys(k.session(s.key)),
            "sv": self.keys(k.session_vars(s.key)),
            "st": self.keys(k.temp_vars(s.key)),
            "us": self.keys(k.user_sessions(s.user_key)),
            "due_s": self.keys(k.due_sessions),
            "due_t": self.keys(k.due_temps),
            "user": s.user_key,
            "started": num(s.started_at),
            "seen": num(s.last_seen),
            "expires": num(s.expires_at),
            "temp": temp,
            "ttl": self.ttl(s.expires_at),
            "temp_ttl": self.ttl(s.temp_expires_at),
        }

    def kvs_write(self, namespace: str, key: str, record: KvsRecord | None) -> dict[str, Any]:
        ns = kvs_keys(self.prefix, namespace)
        found: dict[str, Any] = {
            "d": self.keys(ns.data(key)),
            "names": self.keys(ns.names),
            "due": self.keys(ns.due),
            "key": key,
            "r": "",
        }
        if record is not None:
            found["r"] = pack_kvs(replace(record, version=self.write.version))
            expires = record.expires_at
            found["e"] = "" if expires is None else num(expires)
            found["ttl"] = self.ttl(expires)
        return found


def _number_text(by: int | float) -> str:
    """``by`` as the script reads numbers: integers exactly, floats as JSON."""
    if isinstance(by, bool):
        by = int(by)
    return str(by) if isinstance(by, int) else json.dumps(float(by))


def _without_none(value: Any) -> Any:
    """Drop ``None`` entries of dicts: JSON null would reach Lua as a truthy userdata."""
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_none(v) for v in value]
    return value
