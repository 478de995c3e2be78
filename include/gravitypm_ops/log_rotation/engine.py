"""Log rotation with logrotate 3.21's semantics (the shipping of rotated logs: ship.py).

The runbook's block is the default (`DEFAULT_SETTINGS`; the `log_rotation` config key overrides
single directives):

    <logs_dir>/*.log {
        daily
        rotate 30
        compress
        missingok
        notifempty
        create 0644 www-data www-data
        postrotate
            docker-compose -f .../docker-compose.production.yml restart logging
        endscript
    }

Directive by directive, as logrotate(8) defines them (tests/unit/log_rotation/test_log_rotation.py has one
test per directive, named after it):

- `daily` "Log files are rotated every day": a log rotates when the state file says its last
  rotation was on an earlier calendar day (in GRAVITYPM_OPS_TZ, like the schedule). A log seen
  for the first time is recorded and not rotated, as logrotate does; `force` is `logrotate -f`.
  (`weekly` [Sunday or >= 7 days], `monthly`, `yearly` work the same way.)
- `rotate 30` "rotated count times before being removed": app.log.1.gz is the newest old
  version, app.log.30.gz the oldest; older ones are removed — but only once the vault has them.
- `compress`: gzip at level 6 (logrotate's default compressoptions "-6"), app.log.N -> .N.gz,
  keeping the rotated file's mode, owner and times. No `delaycompress`.
- `missingok` "If the log file is missing, go on to the next one without issuing an error
  message"; without it a pattern matching nothing (or a missing logs_dir) is an error.
- `notifempty` "Do not rotate the log if it is empty" (also under `force`, as in logrotate).
- `create 0644 www-data www-data` "Immediately after rotation (before the postrotate script is
  run) the log file is created"; an omitted attribute keeps the old file's. Owner and group are
  applied when this process may (root, or its own uid and one of its groups), otherwise the run
  notes it; a user or group that does not exist fails the run before any file is touched.
- `postrotate`: a service_control action (default `restart_logging`). logrotate without
  `sharedscripts` runs it once per rotated log, passing the log's path; the runbook's script takes
  no path and restarts the whole logging service, so running it per log would restart logging N
  times in a row for nothing. We run it once per run, after every due log was renamed and
  created and before anything is compressed, and only when something was rotated
  (`sharedscripts` semantics, which is also logrotate's order: postrotate, then compress).
- `copytruncate` "Truncate the original log file to zero size in place after creating a copy"
  — for writers that cannot reopen; `create` then has no effect. The man page's "very small time
  slice between copying the file and truncating it" remains (we re-read up to EOF right before
  truncating, which shrinks it, but cannot close it): prefer `create` + reopen.

No line lost or duplicated (the `create` contract): the writer keeps its file open; rename keeps
it writing into app.log.1 until postrotate tells it to reopen app.log. A rotated file is only
compressed (and its uncompressed copy removed) once postrotate succeeded and the file stopped
growing. When postrotate fails, the files it concerned stay uncompressed and unshipped
("awaiting reopen", by inode, in the state file) — nothing is lost — and the run reports the
failure; the next run (or retry) runs postrotate again before touching them.

Shipping (runbook "Logs: Continuous with rotation", `gravitypm_ops.log_rotation.ship`): every final rotated file (app.log.N.gz)
goes to the vault as a `logs` backup before local pruning may delete it. A file is identified by
the SHA-256 of its bytes, which renaming (.1.gz -> .2.gz) does not change; it is not shipped
again when the vault's `logs` manifests or the local ledger (kept while the file exists, so
vault retention does not cause re-shipping) already list that hash.

State (like logrotate's status file, `state.py`) lives in logs_dir: `.gravitypm-logrotate.json`, guarded by
an exclusive lock on `.gravitypm-logrotate.lock` so two rotations never overlap.
"""

from __future__ import annotations

import fnmatch
import itertools
import logging
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any

from gravitypm_ops.log_rotation.files import (
    TMP_SUFFIX,
    CreateSpec,
    RotatedFile,
    RotationError,
    compress_file,
    copytruncate,
    create_new,
    file_sha256,
    matching_logs,
    numbered,
    wait_until_quiet,
)
from gravitypm_ops.log_rotation.state import STATE_NAME, is_due, load_state, locked, save_state

log = logging.getLogger(__name__)


@dataclass
class Rotation:
    """One rotation run over logs_dir. `run()` does it all and returns the report."""

    logs_dir: str
    settings: Mapping[str, Any]
    now: datetime
    tz: tzinfo = UTC
    force: bool = False
    postrotate: Callable[[], Any] | None = None  # runs the configured action; raises on failure
    shipped_elsewhere: Callable[[], set[str]] | None = None  # hashes already in the vault
    ship: Callable[[Iterable[RotatedFile]], dict] | None = None  # commits one backup; returns its summary
    settle: float = 0.5  # a rotated file is final once it has not grown for this long
    max_wait: float = 30.0

    def run(self) -> dict:
        s = self.settings
        spec = CreateSpec.resolve(s["create"]) if not s["copytruncate"] else None  # may raise: nothing touched yet
        report: dict[str, Any] = {
            "logs_dir": self.logs_dir, "pattern": s["pattern"], "forced": self.force, "rotated": [], "skipped": {},
            "notes": [], "postrotate": None, "compressed": [], "shipped": None, "pruned": [], "kept": [],
            "errors": [],
        }
        if not os.path.isdir(self.logs_dir):
            if s["missingok"]:
                report["skipped"]["*"] = f"{self.logs_dir} does not exist (missingok)"
                return report
            raise RotationError(f"logs_dir {self.logs_dir} does not exist (and missingok is off)")
        with locked(self.logs_dir):
            state = load_state(self.logs_dir)
            self._rotate_due(state, spec, report)
            save_state(self.logs_dir, state)
            self._postrotate(state, report)
            save_state(self.logs_dir, state)
            try:
                self._compress_and_ship(state, report)
            finally:
                save_state(self.logs_dir, state)
            self._prune(state, self._final_files(state), report)
            self._forget_gone(state)
            save_state(self.logs_dir, state)
        return report

    # 1. rename (or copy + truncate) every due log, create the new one
    def _rotate_due(self, state: dict, spec: CreateSpec | None, report: dict) -> None:
        s = self.settings
        names = matching_logs(self.logs_dir, s["pattern"])
        if not names and not s["missingok"]:
            raise RotationError(f"no file in {self.logs_dir} matches {s['pattern']!r} (and missingok is off)")
        for name in names:
            path = os.path.join(self.logs_dir, name)
            try:
                st = os.stat(path)
            except FileNotFoundError:  # vanished since the listing
                if not s["missingok"]:
                    raise RotationError(f"{path} disappeared before rotation (and missingok is off)") from None
                report["skipped"][name] = "missing (missingok)"
                continue
            last = state["logs"].get(name, {}).get("last_rotated")
            if last is None and not self.force:
                # logrotate records a log it sees for the first time and rotates it from the next period on.
                state["logs"][name] = {"last_rotated": self.now.isoformat()}
                report["skipped"][name] = "first seen: recorded, rotates from the next period on"
                continue
            if not self.force and not is_due(s["frequency"], datetime.fromisoformat(last), self.now, self.tz):
                report["skipped"][name] = f"not due ({s['frequency']}; last rotated {last})"
                continue
            if st.st_size == 0 and s["notifempty"]:
                report["skipped"][name] = "empty (notifempty)"
                continue
            self._shift(name)
            rotated = path + ".1"
            if s["copytruncate"]:
                copytruncate(path, rotated)
            else:
                # Recorded (the inode survives the rename) before renaming: even after a crash right
                # here, the file the writer may still be on is never compressed before it reopened.
                state["awaiting_reopen"].append(st.st_ino)
                save_state(self.logs_dir, state)
                os.rename(path, rotated)
                if spec is not None:
                    note = create_new(path, st, spec)
                    if note and note not in report["notes"]:
                        report["notes"].append(note)
            state["logs"][name] = {"last_rotated": self.now.isoformat()}
            report["rotated"].append({"log": name, "to": os.path.basename(rotated), "bytes": st.st_size})
            log.info("rotated %s (%d bytes) -> %s", name, st.st_size, os.path.basename(rotated))

    def _shift(self, name: str) -> None:
        """app.log.N[.gz] -> app.log.N+1[.gz], oldest first; nothing is removed here (pruning is later,
        after shipping)."""
        for number, path in sorted(numbered(self.logs_dir, name).items(), reverse=True):
            suffix = ".gz" if path.endswith(".gz") else ""
            os.rename(path, os.path.join(self.logs_dir, f"{name}.{number + 1}{suffix}"))

    # 2. postrotate once, then wait until the old files stopped growing
    def _postrotate(self, state: dict, report: dict) -> None:
        if not report["rotated"] and not state["awaiting_reopen"]:
            return
        if self.postrotate is not None and self.settings["postrotate"]:
            try:
                result = self.postrotate()
            except Exception as err:
                from gravitypm_ops.redact import scrub

                report["postrotate"] = {"status": "failed", "error": scrub(str(err))}
                report["errors"].append(
                    f"postrotate {self.settings['postrotate']} failed: {scrub(str(err))}; the rotated file(s) stay "
                    f"uncompressed and unshipped until the writer reopens (next run)"
                )
                return
            report["postrotate"] = {"status": "ok", **(result if isinstance(result, dict) else {})}
        awaiting = set(state["awaiting_reopen"])
        paths = [p for p in self._all_numbered() if os.stat(p).st_ino in awaiting]
        growing = wait_until_quiet(paths, self.settle, self.max_wait)
        if growing:
            report["errors"].append(
                f"still written to after the writer was told to reopen: {[os.path.basename(p) for p in growing]}; "
                f"left uncompressed for the next run"
            )
        still = {os.stat(p).st_ino for p in growing}
        state["awaiting_reopen"] = sorted(still)

    def _all_numbered(self) -> list[str]:
        return [p for name in self._log_names() for p in numbered(self.logs_dir, name).values()]

    def _log_names(self) -> list[str]:
        """Every log with old versions here, also ones whose live file is gone."""
        rx = re.compile(r"(.+)\.\d+(?:\.gz)?")
        names = set()
        for entry in os.scandir(self.logs_dir):
            m = rx.fullmatch(entry.name)
            if m and fnmatch.fnmatchcase(m.group(1), self.settings["pattern"]):
                names.add(m.group(1))
        return sorted(names)

    # 3 + 4. compress every old version that is final while shipping what the vault does not have
    def _compress_and_ship(self, state: dict, report: dict) -> None:
        """Compression runs in a worker thread (zlib releases the GIL) while this one uploads each file
        as soon as it is ready. If shipping fails, every compression still finishes before we return."""
        from concurrent.futures import ThreadPoolExecutor

        ready = self._final_files(state)
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="compress") as pool:
            futures = [pool.submit(self._compress_one, state, report, *job) for job in self._to_compress(state)]
            self._ship(state, itertools.chain(ready, (f.result() for f in futures)), report)
        for f in futures:
            f.result()  # a compression error surfaces even when nothing was shipped

    def _to_compress(self, state: dict) -> list[tuple[str, int, str]]:
        if not self.settings["compress"]:
            return []
        awaiting = set(state["awaiting_reopen"])
        return [
            (name, number, path)
            for name in self._log_names()
            for number, path in sorted(numbered(self.logs_dir, name).items())
            if not path.endswith(".gz") and os.stat(path).st_ino not in awaiting
        ]

    def _compress_one(self, state: dict, report: dict, name: str, number: int, path: str) -> RotatedFile:
        target, sha, size, raw = compress_file(path, self.settings["compress_level"])
        gz = os.stat(target)
        state["files"][str(gz.st_ino)] = {"sha256": sha, "size": size, "mtime_ns": gz.st_mtime_ns,
                                          "uncompressed_size": raw}
        report["compressed"].append({"file": os.path.basename(target), "bytes": raw, "gz_bytes": size})
        return RotatedFile(name, target, number, size, sha, raw, True, gz.st_mtime)

    def _final_files(self, state: dict) -> list[RotatedFile]:
        """Old versions that will not change any more, with their hashes (cached by inode)."""
        awaiting = set(state["awaiting_reopen"])
        files = []
        for name in self._log_names():
            for number, path in sorted(numbered(self.logs_dir, name).items()):
                st = os.stat(path)
                compressed = path.endswith(".gz")
                if st.st_ino in awaiting or (self.settings["compress"] and not compressed):
                    continue
                known = state["files"].get(str(st.st_ino))
                if not known or known["size"] != st.st_size or known["mtime_ns"] != st.st_mtime_ns:
                    known = {"sha256": file_sha256(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns,
                             "uncompressed_size": None if compressed else st.st_size}
                    state["files"][str(st.st_ino)] = known
                files.append(RotatedFile(name, path, number, st.st_size, known["sha256"],
                                         known.get("uncompressed_size"), compressed, st.st_mtime))
        return files

    def _ship(self, state: dict, candidates: Iterable[RotatedFile], report: dict) -> None:
        """Hand every candidate the vault does not hold yet (by sha256) to `ship`, as one backup."""
        if self.ship is None:
            return
        asked_vault = False

        def not_yet_shipped() -> Iterator[RotatedFile]:
            nonlocal asked_vault
            seen = set()
            for f in candidates:
                if f.sha256 not in state["shipped"] and not asked_vault and self.shipped_elsewhere is not None:
                    asked_vault = True  # the local ledger does not know it: ask the vault once
                    for sha in self.shipped_elsewhere():
                        state["shipped"].setdefault(sha, "vault")
                if f.sha256 not in state["shipped"] and f.sha256 not in seen:
                    seen.add(f.sha256)
                    yield f

        todo = not_yet_shipped()
        first = next(todo, None)
        if first is None:
            report["shipped"] = {"files": 0}
            return
        handed: list[RotatedFile] = []

        def tracked() -> Iterator[RotatedFile]:
            for f in itertools.chain([first], todo):
                handed.append(f)
                yield f

        summary = self.ship(tracked())
        for f in handed:
            state["shipped"][f.sha256] = summary.get("backup_id", "?")
        report["shipped"] = {**summary, "files": len(handed)}

    # 5. remove what `rotate N` no longer keeps — only once it is in the vault
    def _prune(self, state: dict, final: list[RotatedFile], report: dict) -> None:
        keep = self.settings["rotate"]
        if keep < 0:  # rotate -1: "old logs are not removed at all"
            return
        shipped = set(state["shipped"]) if self.ship is not None else None
        final_by_path = {f.path: f for f in final}
        for name in self._log_names():
            for number, path in sorted(numbered(self.logs_dir, name).items()):
                if number <= keep:
                    continue
                f = final_by_path.get(path)
                if f is None:
                    report["kept"].append(f"{os.path.basename(path)}: not final yet (awaiting reopen or compression)")
                elif shipped is not None and f.sha256 not in shipped:
                    report["kept"].append(f"{os.path.basename(path)}: not in the vault yet")
                else:
                    os.unlink(path)
                    report["pruned"].append(os.path.basename(path))
        for entry in os.scandir(self.logs_dir):  # leftovers of an interrupted compression or copy
            if entry.name.endswith(TMP_SUFFIX) and entry.name != STATE_NAME + TMP_SUFFIX:
                os.unlink(entry.path)

    def _forget_gone(self, state: dict) -> None:
        """Keep the ledger bounded: only hashes and inodes of files still here."""
        present = {}
        for path in self._all_numbered():
            st = os.stat(path)
            present[str(st.st_ino)] = state["files"].get(str(st.st_ino))
        state["files"] = {ino: v for ino, v in present.items() if v is not None}
        hashes = {v["sha256"] for v in state["files"].values()}
        state["shipped"] = {sha: b for sha, b in state["shipped"].items() if sha in hashes}
        live = {os.stat(p).st_ino for p in self._all_numbered()}
        state["awaiting_reopen"] = [i for i in state["awaiting_reopen"] if i in live]
