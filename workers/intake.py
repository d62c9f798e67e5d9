"""The inbox's front in Redis (``GATEWAY_INBOX=redis``): what the web tier appends to, and what
the drain moves into the inbox table.

A verified delivery is acknowledged once one Lua script has, in one step, checked the event's
dedupe key (and a PayPal transmission's), appended the row to its partition's stream and raised
the partition's drain flag. The Redis it runs on must append every write to its AOF and fsync it
before it answers (``appendonly yes``, ``appendfsync always``) and must never evict a key
(``maxmemory-policy noeviction``): from the acknowledgement until a drain has committed the event
to the inbox table, Redis is the event's record. ``check_persistence`` refuses a live merchant on
any other Redis, and warns for a sandbox one.

The drain reads a stream through one consumer group: ``take`` first claims entries a killed
drain left unacknowledged (XAUTOCLAIM, after ``GATEWAY_DRAIN_LOCK_SECONDS``), then reads new
ones; ``move`` stores them in the inbox table, commits, and only then acknowledges and deletes
them (XACK, XDEL). From there the inbox table is the record, as for every event stored by the
database-first path, by ``gateway backfill`` or by a replay. A late duplicate (after the dedupe
key expired) is caught by the table's unique key, as before.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from redis import Redis
from redis.exceptions import RedisError, ResponseError

from ledger.inbox import ONE_ROWS_FAULT, store_rows
from service import metrics
from service.config import Settings
from service.errors import ConfigError, InboxUnavailable, TransmissionReused
from workers.dispatch import flag_key, list_key, stream_key

log = logging.getLogger(__name__)

GROUP = "drain"
_TIMES = ("received_at", "provider_created_at")


def refused_key() -> str:
    """Entries the inbox table would not take (kept for an operator, never dropped)."""
    return "gateway:stream:refused"


def _seen_key(row: dict[str, Any]) -> str:
    return f"gateway:seen:{row['merchant']}\x00{row['provider']}\x00{row['event_id']}"


def _transmission_key(row: dict[str, Any]) -> str:
    return f"gateway:transmission:{row['merchant']}\x00{row['provider']}\x00" \
           f"{row['transmission_id'] or ''}"


# KEYS: seen, transmission, stream, flag. ARGV: dedupe seconds, event id, status, meta, raw body,
# flag seconds, whether the delivery has a transmission id ("1"), the event's key (JSON),
# transmission seconds. Answers {outcome, status, flag}: outcome 1 stored, 0 a duplicate
# (status: the first delivery's; a short entry counts the delivery on the stored row), 2 the
# transmission carried another event (status: that event's id); flag 1 when a drain must be
# scheduled. The entry is appended before any key is set: a script stopped by a failing command
# keeps what it did before it, and a dedupe key without its entry would lose the event.
_APPEND = """
local outcome, status = 1, ARGV[3]
local seen = redis.call('GET', KEYS[1])
if seen then
  outcome, status = 0, seen
  redis.call('XADD', KEYS[3], '*', 'again', ARGV[8])
else
  if ARGV[7] == '1' then
    local owner = redis.call('GET', KEYS[2])
    if owner and owner ~= ARGV[2] then return {2, owner, 0} end
  end
  redis.call('XADD', KEYS[3], '*', 'meta', ARGV[4], 'raw', ARGV[5])
  if ARGV[7] == '1' then redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[9]) end
  redis.call('SET', KEYS[1], ARGV[3], 'EX', ARGV[1])
end
if redis.call('SET', KEYS[4], 'queued', 'NX', 'EX', ARGV[6]) then return {outcome, status, 1} end
return {outcome, status, 0}
"""

# The partition's drain flag is "queued" while a drain job waits for a worker, and
# "draining:<token>" while one drain holds it: its lease, taken when the job starts, extended at
# every batch, given back at the end. A second job for the partition (its flag expired while the
# first waited in the queue) finds the lease held and leaves; a drain whose lease was taken over
# stops. So one drain at a time applies a partition's events, in order.

# KEYS: flag. ARGV: token, seconds. 1: the lease is this drain's now; 0: another drain holds it.
_LEASE = """
local held = redis.call('GET', KEYS[1])
if held and string.sub(held, 1, 9) == 'draining:' and held ~= 'draining:' .. ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], 'draining:' .. ARGV[1], 'EX', ARGV[2])
return 1
"""

# KEYS: flag. ARGV: token, seconds, what to leave ("" to extend). 1: done; 0: not this drain's.
_EXTEND = """
if redis.call('GET', KEYS[1]) ~= 'draining:' .. ARGV[1] then return 0 end
if ARGV[3] == '' then
  redis.call('EXPIRE', KEYS[1], ARGV[2])
else
  redis.call('SET', KEYS[1], ARGV[3], 'EX', ARGV[2])
end
return 1
"""

# KEYS: flag, list, stream. ARGV: the group, the drain's token. Gives the partition up (deletes
# the flag, answers 0) only if nothing waits for it: no id on its list, no stream entry not yet
# read by the group; 1: keep draining; 2: the lease is not this drain's any more (stop, and
# leave the flag to its holder). Atomic with _APPEND, so an entry appended meanwhile either is
# seen here or finds no flag.
_RELEASE = """
if redis.call('GET', KEYS[1]) ~= 'draining:' .. ARGV[2] then return 2 end
if redis.call('LLEN', KEYS[2]) > 0 then return 1 end
if redis.call('XLEN', KEYS[3]) > 0 then
  local last, delivered = nil, '0-0'
  local info = redis.call('XINFO', 'STREAM', KEYS[3])
  for i = 1, #info, 2 do
    if info[i] == 'last-generated-id' then last = info[i + 1] end
  end
  for _, group in ipairs(redis.call('XINFO', 'GROUPS', KEYS[3])) do
    local name, seen = nil, nil
    for i = 1, #group, 2 do
      if group[i] == 'name' then name = group[i + 1] end
      if group[i] == 'last-delivered-id' then seen = group[i + 1] end
    end
    if name == ARGV[1] then delivered = seen end
  end
  if last ~= delivered then return 1 end
end
redis.call('DEL', KEYS[1])
return 0
"""

# KEYS: the partitions' streams. ARGV: the group, idle milliseconds. Removes the group's
# consumers that hold no entry and have done nothing for longer than ARGV[2] (a drain process
# that has stopped: each process reads under a name of its own, so they would pile up); answers
# how many. In one script, so that a consumer cannot read an entry between the look and the
# removal: removing one that holds entries would drop them from the group's pending list, and
# nothing would claim them again. A live drain removed while it holds nothing reads again under
# the same name, which makes it anew.
_PRUNE = """
local gone = 0
for _, stream in ipairs(KEYS) do
  local consumers = redis.pcall('XINFO', 'CONSUMERS', stream, ARGV[1])
  if type(consumers) == 'table' and not consumers.err then
    for _, consumer in ipairs(consumers) do
      local name, pending, idle = nil, nil, nil
      for i = 1, #consumer, 2 do
        if consumer[i] == 'name' then name = consumer[i + 1] end
        if consumer[i] == 'pending' then pending = consumer[i + 1] end
        if consumer[i] == 'idle' then idle = consumer[i + 1] end
      end
      if pending == 0 and idle > tonumber(ARGV[2]) then
        redis.call('XGROUP', 'DELCONSUMER', stream, ARGV[1], name)
        gone = gone + 1
      end
    end
  end
end
return gone
"""


@dataclass(frozen=True, slots=True)
class Appended:
    duplicate: bool
    status: str
    schedule: bool  # the partition had no drain queued or running: enqueue one


class Intake:
    """The Redis side of the inbox for one Redis connection."""

    def __init__(self, redis: Redis, settings: Settings) -> None:
        self.redis = redis
        self.settings = settings
        self._problems: list[str] | None = None  # Redis's persistence, checked on first use
        self.dedupe_seconds = settings.inbox_dedupe_seconds
        # A transmission id stays bound at least as long as PayPal's signature on it is fresh
        # (either way of the tolerance), so a reuse is refused at the door, never after a 200.
        self.transmission_seconds = max(self.dedupe_seconds, 2 * settings.paypal_tolerance + 60)
        self.flag_seconds = settings.drain_lock_seconds
        self.batch = settings.batch_size
        self._append = redis.register_script(_APPEND)
        self._release = redis.register_script(_RELEASE)
        self._lease = redis.register_script(_LEASE)
        self._extend = redis.register_script(_EXTEND)
        self._prune = redis.register_script(_PRUNE)
        self._groups: set[int] = set()
        self.consumer = f"{socket.gethostname()}:{os.getpid()}"

    # -- the web tier ------------------------------------------------------------------------

    def append(self, row: dict[str, Any]) -> Appended:
        """Append one inbox row (``ledger.inbox.new_event_row``) to its partition's stream,
        unless its event was appended within the dedupe window. Raises TransmissionReused, and
        RedisError when Redis did not take it, and InboxUnavailable for a live merchant's
        delivery when this Redis may lose it (the caller answers 503 to both)."""
        self._require_persistence(row["merchant"])
        return self._appended(row, self._append(**self._call(row)))

    def append_many(self, rows: Sequence[dict[str, Any]]) -> list[Appended]:
        """``append`` for many rows in one round trip (a bulk load: one fsync for them all)."""
        for merchant in {row["merchant"] for row in rows}:
            self._require_persistence(merchant)
        pipe = self.redis.pipeline(transaction=False)
        for row in rows:
            self._append(**self._call(row), client=pipe)
        return [self._appended(row, answer)
                for row, answer in zip(rows, pipe.execute(), strict=True)]

    def _call(self, row: dict[str, Any]) -> dict[str, Any]:
        transmission = bool(row.get("transmission_id"))
        return {"keys": [_seen_key(row), _transmission_key(row), stream_key(row["partition"]),
                         flag_key(row["partition"])],
                "args": [self.dedupe_seconds, row["event_id"], str(row["status"]),
                         encode_meta(row), row["raw_body"], self.flag_seconds,
                         "1" if transmission else "0",
                         json.dumps([row["merchant"], row["provider"], row["event_id"]]),
                         self.transmission_seconds]}

    @staticmethod
    def _appended(row: dict[str, Any], answer: Any) -> Appended:
        outcome, status, flag = answer
        if outcome == 2:
            raise TransmissionReused(row["transmission_id"])
        return Appended(outcome == 0, status.decode(), bool(flag))

    def _require_persistence(self, merchant_name: str) -> None:
        """Once per process, on the first append (Redis may not have answered at start-up):
        a live merchant's deliveries are refused on a Redis that may lose them."""
        if self._problems is None:
            self._problems = persistence_problems(self.redis)
            if self._problems:
                log.warning("the Redis inbox's Redis may lose acknowledged events: %s",
                            "; ".join(self._problems))
        merchant = self.settings.merchant(merchant_name)
        if self._problems and merchant is not None and merchant.livemode:
            raise InboxUnavailable(f"merchant {merchant_name} is live and this Redis may lose "
                                   f"acknowledged events: {'; '.join(self._problems)}")

    def seen(self, merchant: str, provider: str, event_ids: Sequence[str]) -> set[str]:
        """Which of ``event_ids`` were appended within the dedupe window (received, though
        perhaps not in the inbox table yet)."""
        pipe = self.redis.pipeline(transaction=False)
        for event_id in event_ids:
            pipe.exists(_seen_key({"merchant": merchant, "provider": provider,
                                   "event_id": event_id}))
        return {i for i, found in zip(event_ids, pipe.execute(), strict=True) if found}

    # -- the drain -----------------------------------------------------------------------------

    def take(self, partition: int) -> list[tuple[bytes, dict[bytes, bytes]]]:
        """Up to a batch of entries: first those a killed drain read and never acknowledged
        (idle for longer than a drain may hold its partition), then new ones."""
        self._group(partition)
        try:
            return self._take(partition)
        except ResponseError as exc:  # the stream and its group went (an emptied Redis)
            if "NOGROUP" not in str(exc):
                raise
            self._groups.discard(partition)
            self._group(partition)
            return self._take(partition)

    def _take(self, partition: int) -> list[tuple[bytes, dict[bytes, bytes]]]:
        stream = stream_key(partition)
        idle_ms = self.flag_seconds * 1000
        claimed = self.redis.xautoclaim(stream, GROUP, self.consumer, idle_ms, "0-0",
                                        count=self.batch)
        entries = [(i, f) for i, f in claimed[1] if f]  # a deleted entry comes back empty
        if entries:
            log.warning("claimed %d stream entries a stopped drain left (partition %d)",
                        len(entries), partition)
            return entries
        read: Any = self.redis.xreadgroup(GROUP, self.consumer, {stream: ">"}, count=self.batch)
        # [[stream, entries]]; a RESP3 connection without legacy shapes answers {stream: entries}
        batches = read.values() if isinstance(read, dict) else [b for _, b in read or []]
        return [(i, f) for batch in batches for i, f in batch if f]

    def done(self, partition: int, entry_ids: Sequence[bytes]) -> None:
        """Acknowledge and delete entries whose rows the inbox table has committed."""
        if not entry_ids:
            return
        pipe = self.redis.pipeline(transaction=True)
        pipe.xack(stream_key(partition), GROUP, *entry_ids)
        pipe.xdel(stream_key(partition), *entry_ids)
        pipe.execute()

    def lease(self, partition: int, token: str) -> bool:
        """Take the partition for the drain ``token`` (False: another drain holds it)."""
        return bool(self._lease(keys=[flag_key(partition)], args=[token, self.flag_seconds]))

    def extend(self, partition: int, token: str) -> bool:
        """Hold the partition for another lock period (False: the lease was lost: stop)."""
        return bool(self._extend(keys=[flag_key(partition)],
                                 args=[token, self.flag_seconds, ""]))

    def hand_over(self, partition: int, token: str) -> bool:
        """Leave the partition "queued" for the next drain job (the caller enqueues it)."""
        return bool(self._extend(keys=[flag_key(partition)],
                                 args=[token, self.flag_seconds, "queued"]))

    def release(self, partition: int, token: str) -> bool:
        """Give the partition up if nothing waits for it, or stop if the lease was lost
        (True); False: keep draining."""
        answer = self._release(keys=[flag_key(partition), list_key(partition),
                                     stream_key(partition)], args=[GROUP, token])
        return int(answer) != 1

    def prune(self, partitions: int) -> int:
        """Remove the consumers of stopped drains: those of the partitions' groups that hold
        no entry and have been idle for longer than a drain may hold its partition (the idle
        time after which their entries would be claimed too); returns how many went."""
        keys = [stream_key(p) for p in range(partitions)]
        return int(self._prune(keys=keys, args=[GROUP, self.flag_seconds * 1000]))

    def in_streams(self, partitions: int) -> int:
        """How many deliveries wait in the partitions' streams (acknowledged, not yet stored
        in the inbox table; a redelivery's short entry counts too)."""
        pipe = self.redis.pipeline(transaction=False)
        for partition in range(partitions):
            pipe.xlen(stream_key(partition))
        return sum(pipe.execute())

    def refused(self, limit: int) -> tuple[int, list[dict[str, Any]]]:
        """How many entries the inbox table refused, and the first ``limit`` of them: each
        entry's row (``decode``) with its ``reason`` and the ``entry_id`` it is kept under."""
        total = self.redis.xlen(refused_key())
        rows = []
        entries: list[tuple[bytes, dict[bytes, bytes]]] = cast(
            Any, self.redis.xrange(refused_key(), count=limit))
        for entry_id, fields in entries:
            row = decode(fields)
            row["reason"] = fields.get(b"reason", b"").decode(errors="replace")
            row["entry_id"] = entry_id.decode()
            rows.append(row)
        return total, rows

    def waiting(self, partition: int) -> bool:
        """Whether the partition's stream holds entries, read or not (the sweeper's test)."""
        return bool(self.redis.xlen(stream_key(partition)))

    def refuse(self, partition: int, entry_id: bytes, row: dict[str, Any],
               fields: dict[bytes, bytes], reason: str) -> None:
        """Keep an entry (``fields``, read as ``row``) the inbox table refused on a stream of
        its own, then let it go; its dedupe key goes too, so that the event is not taken for
        received (by a redelivery's answer or by backfill)."""
        kept: dict[Any, Any] = {**fields, b"reason": reason.encode(),
                                b"partition": str(partition).encode()}
        self.redis.xadd(refused_key(), kept)
        self.redis.delete(_seen_key(row))
        self.done(partition, [entry_id])

    def _group(self, partition: int) -> None:
        if partition in self._groups:
            return
        try:  # from the stream's start: entries appended before the group existed count
            self.redis.xgroup_create(stream_key(partition), GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._groups.add(partition)


def move(intake: Intake, engine: Any, partition: int,
         entries: list[tuple[bytes, dict[bytes, bytes]]]) -> list[int]:
    """Store ``entries`` in the inbox table, commit, then acknowledge them; returns the inbox
    ids stored or found (a late duplicate's is the first delivery's). A redelivery within the
    dedupe window counts one more delivery on its row. An entry the table refuses on its own
    account (a PayPal transmission that carried another event, a value a column refuses) is
    kept on the refused stream and counted, never dropped silently, and never holds up the
    rest of its batch."""
    rows = [decode(f) for _, f in entries if b"meta" in f]
    again = Counter(tuple(json.loads(f[b"again"])) for _, f in entries if b"again" in f)
    try:
        ids = store_rows(engine, rows, again)
    # What the table refuses for a reason of one row's own (a constraint, a value a column
    # refuses): storing that entry again can never succeed, so it is kept aside rather than
    # retried for ever. Anything else (the database unavailable) leaves every entry in the
    # stream, to be claimed again.
    except ONE_ROWS_FAULT:
        ids = _one_by_one(intake, engine, partition, entries)
        ids += store_rows(engine, [], again)  # the redeliveries, once their rows are in
    intake.done(partition, [entry_id for entry_id, _ in entries])
    return ids


def _one_by_one(intake: Intake, engine: Any, partition: int,
                entries: list[tuple[bytes, dict[bytes, bytes]]]) -> list[int]:
    """Each delivery of a batch that failed as a whole in a transaction of its own."""
    ids: list[int] = []
    for entry_id, fields in entries:
        if b"meta" not in fields:
            continue
        row = decode(fields)
        try:
            ids += store_rows(engine, [row])
        except ONE_ROWS_FAULT as exc:
            reason = str(exc).splitlines()[0][:500]
            code = "transmission_reused" if isinstance(exc, TransmissionReused) else "refused"
            metrics.WEBHOOKS_REJECTED.labels(row["provider"], code).inc()
            log.error("stream entry refused by the inbox: %s", reason)
            intake.refuse(partition, entry_id, row, fields, reason)
    return ids


def encode_meta(row: dict[str, Any]) -> str:
    """The row without its body, as JSON (times in ISO 8601)."""
    meta = {k: v for k, v in row.items() if k != "raw_body"}
    for name in _TIMES:
        if meta.get(name) is not None:
            meta[name] = meta[name].isoformat()
    return json.dumps(meta, separators=(",", ":"))


def decode(fields: dict[bytes, bytes]) -> dict[str, Any]:
    row: dict[str, Any] = json.loads(fields[b"meta"])
    for name in _TIMES:
        if row.get(name) is not None:
            row[name] = datetime.fromisoformat(row[name])
    row["raw_body"] = fields[b"raw"]
    return row


# -- start-up ------------------------------------------------------------------------------------

_REQUIRED = {"appendonly": "yes", "appendfsync": "always", "maxmemory-policy": "noeviction"}


def persistence_problems(redis: Redis) -> list[str]:
    """What keeps this Redis from being an inbox's record (empty: nothing)."""
    problems = []
    for name, wanted in _REQUIRED.items():
        try:
            value = redis.config_get(name).get(name)
        except ResponseError:  # CONFIG renamed or refused (a managed Redis)
            value = None
        if value is None:
            problems.append(f"{name} could not be read (CONFIG GET refused); "
                            f"it must be {wanted!r}")
        elif value != wanted:
            problems.append(f"{name} is {value!r}, not {wanted!r}")
    return problems


def check_persistence(settings: Settings, redis: Redis) -> None:
    """At start-up, with the Redis inbox: refuse a live merchant on a Redis that may lose an
    acknowledged event (ConfigError); for sandbox merchants only, say so loudly."""
    if settings.inbox != "redis":
        return
    try:
        problems = persistence_problems(redis)
    except RedisError as exc:  # checked again on the first delivery (Intake.append)
        log.info("could not check Redis's persistence at start-up: %s", exc)
        return
    if not problems:
        return
    what = "; ".join(problems)
    live = sorted(name for name, m in settings.merchants.items() if m.livemode)
    if live:
        raise ConfigError(f"GATEWAY_INBOX=redis keeps acknowledged events in Redis until a "
                          f"drain commits them, and merchant {live[0]} is live, but this Redis "
                          f"may lose them: {what}")
    log.warning("WARNING: GATEWAY_INBOX=redis on a Redis that may lose acknowledged events "
                "(%s); acceptable for sandbox merchants only", what)
