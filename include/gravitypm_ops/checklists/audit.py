"""Checklist audit history: append-only, hash-chained records in the vault bucket.

Lives outside Airflow's metadata DB, so it survives `airflow db clean`:

    <vault_prefix>/audit/<checklist>/<seq:010d>.json     one record per item per run, seq from 1

- Written with `IfNoneMatch="*"`: a record is never overwritten (two writers racing for the
  same seq: one wins, the other re-reads the tail and chains after it). With `object_lock_days`
  every record is also locked, like backups.
- Each record carries `prev_hash` (the previous record's `hash`, "" for seq 1) and `hash`
  (sha256 of its canonical JSON without `hash`). `verify` recomputes the chain: an edited record,
  a deleted one (a gap in seq, or a broken link) and, on a versioned bucket, any overwrite or
  delete marker under the chain's prefix are reported.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from gravitypm_ops.vault.layout import StoreError, WriteConflict

log = logging.getLogger(__name__)

SCHEMA = 1
AUDIT_DIR = "audit"
OUTCOMES = ("passed", "failed", "warning", "missed", "waived")
ITEM_KINDS = ("automated", "human")
CHAIN_FIELDS = ("seq", "prev_hash", "hash")
REQUIRED = (
    "period", "run_id", "dag_id", "item", "title", "item_kind", "outcome", "actor", "started_at", "completed_at",
    "evidence",
)
READ_THREADS, READ_BATCH = 16, 64  # parallel GETs when reading a chain
MAX_RECORD_BYTES = 64 * 1024  # evidence is a summary and links, not a data dump
_NAME = re.compile(r"^[a-z0-9][a-z0-9_]*$")
_KEY = re.compile(r"(\d{10})\.json")  # a record's key below its chain's prefix (not in a sub-folder)
UNPARSABLE = "unparsable"  # what _read_checked gives for an object that is not a JSON record


class AuditError(RuntimeError):
    """The audit history cannot be written as asked."""


def canonical(record: dict) -> bytes:
    return json.dumps(record, sort_keys=True, separators=(",", ":")).encode()


def record_hash(record: dict) -> str:
    """sha256 (hex) of the canonical JSON of the record without its own `hash`."""
    return hashlib.sha256(canonical({k: v for k, v in record.items() if k != "hash"})).hexdigest()


def _json_value(value):
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC).isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable in an audit record")


def _as_datetime(value) -> datetime:
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    else:
        moment = datetime.fromisoformat(str(value))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def validate_record(checklist: str, record: dict) -> dict:
    """A clean copy of one record to append (no chain fields yet), or ValueError saying what is wrong."""
    if not isinstance(record, dict):
        raise ValueError(f"audit record must be a dict, got {type(record).__name__}")
    present = [k for k in CHAIN_FIELDS if k in record]
    if present:
        raise ValueError(f"audit record must not carry {', '.join(present)}: append() sets the chain fields")
    clean = json.loads(json.dumps(record, default=_json_value))
    clean.setdefault("schema", SCHEMA)
    clean.setdefault("checklist", checklist)
    missing = [k for k in REQUIRED if k not in clean]
    if missing:
        raise ValueError(f"audit record for {checklist!r} lacks {', '.join(missing)}")
    if clean["checklist"] != checklist:
        raise ValueError(f"record is for checklist {clean['checklist']!r}, appended to {checklist!r}")
    if clean["schema"] != SCHEMA:
        raise ValueError(f"unknown audit record schema {clean['schema']!r} (expected {SCHEMA})")
    if clean["outcome"] not in OUTCOMES:
        raise ValueError(f"outcome {clean['outcome']!r} is not one of {', '.join(OUTCOMES)}")
    if clean["item_kind"] not in ITEM_KINDS:
        raise ValueError(f"item_kind {clean['item_kind']!r} is not one of {', '.join(ITEM_KINDS)}")
    for name in ("period", "run_id", "dag_id", "item", "title", "actor"):
        if not isinstance(clean[name], str) or not clean[name]:
            raise ValueError(f"audit record field {name!r} must be a non-empty string")
    for name in ("started_at", "completed_at"):
        try:
            _as_datetime(clean[name])
        except (TypeError, ValueError):
            raise ValueError(f"audit record field {name!r} is not an ISO 8601 time: {clean[name]!r}") from None
    evidence = clean["evidence"]
    if not isinstance(evidence, dict) or not isinstance(evidence.get("summary"), str):
        raise ValueError("audit record evidence must be {'summary': str, 'links': [...], 'data': {...}}")
    evidence.setdefault("links", [])
    evidence.setdefault("data", {})
    if not all(isinstance(link, dict) and {"label", "url"} <= link.keys() for link in evidence["links"]):
        raise ValueError("evidence links must be {'label': str, 'url': str}")
    if not isinstance(evidence["data"], dict):
        raise ValueError("evidence data must be a JSON object")
    if len(canonical(clean)) > MAX_RECORD_BYTES:
        raise ValueError(f"audit record for item {clean['item']!r} exceeds {MAX_RECORD_BYTES} bytes; trim its evidence")
    return clean


@dataclass
class ChainReport:
    checklist: str
    ok: bool
    records: int
    problems: list[str] = field(default_factory=list)
    head_hash: str = ""  # hash of the newest record: note it elsewhere to pin the chain's length

    def to_dict(self) -> dict:
        return {"checklist": self.checklist, "ok": self.ok, "records": self.records, "problems": self.problems,
                "head_hash": self.head_hash}


class AuditLog:
    def __init__(self, vault):
        self.vault = vault
        self.root = f"{vault.prefix}/{AUDIT_DIR}/"

    @classmethod
    def from_config(cls, cfg) -> AuditLog:
        from gravitypm_ops.vault.store import Vault

        return cls(Vault.from_config(cfg))

    # --- layout ---------------------------------------------------------------------------------
    def _prefix(self, checklist: str) -> str:
        if not isinstance(checklist, str) or not _NAME.match(checklist):
            raise ValueError(f"checklist name {checklist!r} must match {_NAME.pattern}")
        return f"{self.root}{checklist}/"

    def _key(self, checklist: str, seq: int) -> str:
        return f"{self._prefix(checklist)}{seq:010d}.json"

    def _keys(self, checklist: str, strays: list[str] | None = None) -> list[tuple[int, str]]:
        """(seq, key) of every stored record of a checklist, by seq; other keys go to `strays`."""
        found, prefix = [], self._prefix(checklist)
        for key in self.vault.list_keys(prefix):
            match = _KEY.fullmatch(key.removeprefix(prefix))
            if match:
                found.append((int(match.group(1)), key))
            elif strays is not None:
                strays.append(key)
        return sorted(found)

    def _read(self, key: str) -> dict | None:
        return self.vault.read_json(key)

    def _read_checked(self, key: str) -> dict | str | None:
        """Like _read, but an object that is not a JSON record (garbage written over a record)
        reads as UNPARSABLE, so verify and append report it instead of crashing."""
        try:
            record = self._read(key)
        except ValueError:  # json.JSONDecodeError, UnicodeDecodeError
            return UNPARSABLE
        return record if record is None or isinstance(record, dict) else UNPARSABLE

    def _read_many(self, keys: list[str], read=None) -> Iterator[dict | None]:
        """The records at `keys`, in order, fetched READ_THREADS at a time: one GET per record, so
        a long history is bound by S3's latency, not its bandwidth. Stopping early reads at most
        one batch too many."""
        with ThreadPoolExecutor(READ_THREADS) as pool:
            for start in range(0, len(keys), READ_BATCH):
                yield from pool.map(read or self._read, keys[start:start + READ_BATCH])

    # --- writing --------------------------------------------------------------------------------
    def append(self, checklist: str, records: Iterable[dict], *, attempts: int = 5) -> list[dict]:
        """Append records in the given order, each chained to the previous; returns them as stored."""
        clean = [validate_record(checklist, r) for r in records]  # all checked before any write
        stored: list[dict] = []
        tail = self._tail(checklist)
        conflicts = 0
        while len(stored) < len(clean):
            seq = (tail["seq"] if tail else 0) + 1
            record = {**clean[len(stored)], "seq": seq, "prev_hash": tail["hash"] if tail else ""}
            record["hash"] = record_hash(record)
            if self._put(self._key(checklist, seq), record):
                stored.append(record)
                tail = record
                continue
            conflicts += 1  # another writer took this seq: chain after its record instead
            if conflicts >= attempts:
                raise AuditError(f"audit chain {checklist!r}: seq {seq} kept being taken by another writer")
            tail = self._tail(checklist)
        log.info("audit %s: appended seq %s", checklist, ", ".join(str(r["seq"]) for r in stored) or "nothing")
        return stored

    def _tail(self, checklist: str) -> dict | None:
        keys = self._keys(checklist)
        if not keys:
            return None
        seq, key = keys[-1]
        record = self._read_checked(key)
        if not isinstance(record, dict) or record.get("seq") != seq or record_hash(record) != record.get("hash"):
            raise AuditError(f"audit chain {checklist!r}: newest record {key} is unreadable or altered; "
                             "run verify before appending")
        return record

    def _put(self, key: str, record: dict) -> bool:
        """Write a new record (encrypted, locked); False when the key is taken (never overwrites)."""
        try:
            return self.vault.put_once(key, record)
        except WriteConflict:  # another writer is taking this seq right now: chain after it
            return False

    # --- reading --------------------------------------------------------------------------------
    def checklists(self) -> list[str]:
        names = {prefix[len(self.root):].rstrip("/") for prefix in self.vault.list_prefixes(self.root)}
        return sorted(n for n in names if _NAME.match(n))

    def records(self, checklist: str | None = None, since=None, until=None, outcome=None) -> list[dict]:
        """Stored records, by checklist name then seq. `since` / `until` (datetime, date or ISO string)
        bound `completed_at` (inclusive); `outcome` is one outcome or a collection of them.

        With `since`, a chain is read from its newest record backwards and reading stops at the first
        run older than the first record that completed more than a day before `since`: runs are
        appended one after the other, but within a run a human item answered late may come before an
        automated one that completed early. So a short window stays cheap."""
        low = _as_datetime(since) if since is not None else None
        high = _as_datetime(until) if until is not None else None
        outcomes = {outcome} if isinstance(outcome, str) else set(outcome) if outcome is not None else None
        found = []
        for name in [checklist] if checklist else self.checklists():
            chain, old_run = [], None
            newest_first = [key for _, key in reversed(self._keys(name))]
            for record in self._read_many(newest_first, self._read_checked):
                if not isinstance(record, dict):  # vanished, or garbage that verify reports
                    continue
                if old_run is not None and record.get("run_id") != old_run:
                    break  # an earlier run: every record of it completed before old_run began
                completed = _as_datetime(record.get("completed_at", "1970-01-01T00:00:00+00:00"))
                if low and old_run is None and completed < low - timedelta(days=1):
                    old_run = record.get("run_id")  # read the rest of this run, then stop
                if (low and completed < low) or (high and completed > high):
                    continue
                if outcomes is not None and record.get("outcome") not in outcomes:
                    continue
                chain.append(record)
            found.extend(reversed(chain))
        return found

    def first(self, checklist: str) -> dict | None:
        """The oldest record of a chain (None when it has none)."""
        keys = self._keys(checklist)
        return self._read(keys[0][1]) if keys else None

    def tail(self, checklist: str, n: int) -> list[dict]:
        """The newest `n` records of a chain, in seq order."""
        keys = self._keys(checklist)[-n:] if n > 0 else []
        return [r for r in (self._read(key) for _, key in keys) if r is not None]

    # --- proving --------------------------------------------------------------------------------
    def verify(self, checklist: str) -> ChainReport:
        """Recompute the chain: every record intact, seq 1..n without gaps, each linked to the one
        before; on a versioned bucket also no overwritten or deleted record versions."""
        prefix = self._prefix(checklist)
        strays: list[str] = []
        keys = self._keys(checklist, strays)
        problems = [f"{key.removeprefix(prefix)}: unexpected object in the audit chain" for key in strays]
        previous_hash, expected_seq = "", 1
        records = self._read_many([key for _, key in keys], self._read_checked)
        for (seq, key), record in zip(keys, records, strict=True):
            if seq != expected_seq:
                problems.append(f"seq {expected_seq}" + (f"..{seq - 1}" if seq - 1 > expected_seq else "")
                                + " missing (deleted record)")
            if record is None:
                problems.append(f"seq {seq}: {key} vanished while verifying")
                previous_hash, expected_seq = "", seq + 1
                continue
            if record == UNPARSABLE:
                problems.append(f"seq {seq}: not a JSON record (record edited)")
                previous_hash, expected_seq = "", seq + 1
                continue
            if record.get("hash") != record_hash(record):
                problems.append(f"seq {seq}: content does not match its hash (record edited)")
            if record.get("seq") != seq:
                problems.append(f"seq {seq}: record says seq {record.get('seq')!r} (moved or copied)")
            if record.get("checklist") != checklist:
                problems.append(f"seq {seq}: record belongs to checklist {record.get('checklist')!r}")
            if seq == expected_seq and record.get("prev_hash") != previous_hash:
                problems.append(f"seq {seq}: prev_hash does not match seq {seq - 1}'s hash (chain broken)")
            previous_hash, expected_seq = record.get("hash", ""), seq + 1
        problems.extend(self._version_problems(prefix))
        return ChainReport(checklist, not problems, len(keys), problems, previous_hash)

    def _version_problems(self, prefix: str) -> list[str]:
        """On a versioned bucket a deleted record leaves a delete marker and an edited one an older
        version: either means someone touched the history (a deleted newest record leaves no gap)."""
        try:
            history = self.vault.object_versions(prefix)
        except StoreError as err:
            log.warning("audit verify: cannot read object versions (%s); chain checked by hashes only", err.code)
            return []
        if history is None:  # an unversioned bucket keeps no trace of overwrites
            return []
        problems = [f"{key.removeprefix(prefix)}: deleted (delete marker in the bucket)" for key in history["deleted"]]
        for key, count in sorted(history["versions"].items()):
            if count > 1:
                problems.append(f"{key.removeprefix(prefix)}: overwritten ({count} versions)")
        return problems
