"""The rotation engine, directive by directive, against logrotate 3.21's man page.

Each test quotes the words it checks. Shipping uses a recording stand-in here (pure logic);
tests/integration/test_log_rotation.py ships to the real local S3 through the DAG.
"""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from gravitypm_ops.config import ConfigError, parse_config
from gravitypm_ops.config.log_rotation import DEFAULT_SETTINGS, parse_rotation_settings
from gravitypm_ops.log_rotation.engine import Rotation
from gravitypm_ops.log_rotation.files import RotationError
from gravitypm_ops.log_rotation.state import LOCK_NAME, STATE_NAME, is_due, load_state, locked

DAY0 = datetime(2026, 11, 27, 0, 0, 5, tzinfo=UTC)


class Vaultish:
    """Records what would be shipped (and in which order relative to deletions)."""

    def __init__(self):
        self.shipped: list[tuple[str, str]] = []  # (file name at ship time, sha256)
        self.fail = False

    def ship(self, files):
        if self.fail:
            raise RuntimeError("vault unreachable")
        batch = [(f.name, f.sha256) for f in files]  # an iterator: files arrive as they are compressed
        self.shipped += batch
        return {"backup_id": f"b{len(self.shipped)}", "files": len(batch)}

    def hashes(self) -> set[str]:
        return {sha for _, sha in self.shipped}


def settings(**overrides):
    # Tests run as whoever runs them: the runbook's www-data owner needs root (see test_create_*).
    return parse_rotation_settings({"create": {"mode": "0644"}, **overrides})


def rotation(logs: Path, now=DAY0, vault: Vaultish | None = None, postrotate=None, **kw) -> Rotation:
    s = kw.pop("settings", None) or settings()
    return Rotation(
        str(logs), s, now=now, force=kw.pop("force", False), postrotate=postrotate,
        ship=vault.ship if vault else None, shipped_elsewhere=kw.pop("shipped_elsewhere", None),
        settle=kw.pop("settle", 0.05), max_wait=kw.pop("max_wait", 2.0), **kw,
    )


def names(logs: Path) -> list[str]:
    return sorted(p.name for p in logs.iterdir() if not p.name.startswith(".gravitypm-"))


def seen_then_rotated(logs: Path, content: dict[str, str], **kw) -> dict:
    """Write logs, let the engine record them (first sight), then run it a day later."""
    for name, text in content.items():
        (logs / name).write_text(text)
    rotation(logs, now=DAY0, **kw).run()
    return rotation(logs, now=DAY0 + timedelta(days=1), **kw).run()


@pytest.fixture
def logs(tmp_path) -> Path:
    d = tmp_path / "logs"
    d.mkdir()
    return d


# --- settings -------------------------------------------------------------------------------------


def test_defaults_are_the_runbooks_block():
    s = parse_rotation_settings({})
    assert s["pattern"] == "*.log"
    assert s["frequency"] == "daily"
    assert s["rotate"] == 30
    assert s["compress"] is True and s["compress_level"] == 6  # logrotate's compressoptions "-6"
    assert s["missingok"] is True and s["notifempty"] is True
    assert s["create"] == {"mode": "0644", "owner": "www-data", "group": "www-data"}
    assert s["copytruncate"] is False
    assert s["postrotate"] == "restart_logging"
    assert parse_rotation_settings(None) == s == parse_rotation_settings(s)  # idempotent: config re-parses


def test_overrides_replace_single_directives():
    s = parse_rotation_settings({"rotate": 7, "create": False, "postrotate": None, "frequency": "weekly"})
    assert (s["rotate"], s["create"], s["postrotate"], s["frequency"]) == (7, False, None, "weekly")
    assert s["compress"] is True  # untouched directives keep the runbook's value
    assert parse_rotation_settings({"create": {"mode": "640"}})["create"] == {"mode": "0640", "owner": None,
                                                                                "group": None}


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ({"rotat": 30}, "unknown directive(s) 'rotat'"),
        ({"rotate": "30"}, "log_rotation.rotate must be a whole number"),
        ({"rotate": True}, "log_rotation.rotate must be a whole number"),
        ({"compress_level": 10}, "log_rotation.compress_level must be a whole number from 1 to 9"),
        ({"create": {"mode": "0x44"}}, "log_rotation.create mode must be an octal string"),
        ({"create": {"mode": "0644", "user": "x"}}, "log_rotation.create unknown field(s) 'user'"),
        ({"create": True}, "log_rotation.create must be false (nocreate) or"),
        ({"postrotate": "reboot"}, "log_rotation.postrotate must be null or a service action"),
        ({"pattern": "../*.log"}, "log_rotation.pattern must be a file name glob"),
        ({"frequency": "hourly"}, "log_rotation.frequency must be one of daily, weekly, monthly, yearly"),
        ({"missingok": "yes"}, "log_rotation.missingok must be true or false"),
        ([], "must be an object of directive -> value"),
    ],
)
def test_bad_settings_name_the_sub_key(value, words):
    with pytest.raises(ValueError) as err:
        parse_rotation_settings(value)
    assert words in str(err.value)


def test_config_key_log_rotation_is_checked_by_this_module():
    assert parse_config({"log_rotation": {"rotate": 14}}).log_rotation["rotate"] == 14
    with pytest.raises(ConfigError, match=r"key 'log_rotation' log_rotation\.rotate must be"):
        parse_config({"log_rotation": {"rotate": -5}})


# --- daily -------------------------------------------------------------------------------------


def test_daily_rotates_once_per_calendar_day(logs):
    """"Log files are rotated every day"; "It will not modify a log more than once in one day"."""
    (logs / "app.log").write_text("day 0\n")
    first = rotation(logs, now=DAY0).run()
    assert first["rotated"] == [] and "first seen" in first["skipped"]["app.log"]  # as logrotate's new state
    assert rotation(logs, now=DAY0 + timedelta(hours=23)).run()["rotated"] == []  # same day
    assert [r["log"] for r in rotation(logs, now=DAY0 + timedelta(days=1)).run()["rotated"]] == ["app.log"]
    (logs / "app.log").write_text("day 1\n")
    again = rotation(logs, now=DAY0 + timedelta(days=1, hours=5)).run()
    assert again["rotated"] == [] and "not due (daily" in again["skipped"]["app.log"]
    # -f, --force: "force the rotation, even if it doesn't think this is necessary"
    assert rotation(logs, now=DAY0 + timedelta(days=1, hours=6), force=True).run()["rotated"]
    assert names(logs) == ["app.log", "app.log.1.gz", "app.log.2.gz"]


def test_calendar_day_is_taken_in_the_ops_timezone():
    berlin = ZoneInfo("Europe/Berlin")
    last = datetime(2026, 11, 27, 22, 30, tzinfo=UTC)  # 23:30 in Berlin
    assert is_due("daily", last, datetime(2026, 11, 27, 23, 10, tzinfo=UTC), berlin)  # 00:10 next day there
    assert not is_due("daily", last, datetime(2026, 11, 27, 23, 10, tzinfo=UTC), UTC)


@pytest.mark.parametrize(
    ("frequency", "last", "now", "due"),
    [
        ("weekly", "2026-11-23", "2026-11-28", False),  # Mon -> Sat
        ("weekly", "2026-11-23", "2026-11-29", True),  # the weekday (Sunday) came
        ("weekly", "2026-11-29", "2026-12-06", True),  # advanced 7 days
        ("monthly", "2026-11-01", "2026-11-30", False),
        ("monthly", "2026-11-30", "2026-12-01", True),
        ("yearly", "2026-01-01", "2026-12-31", False),
        ("yearly", "2026-12-31", "2027-01-01", True),
    ],
)
def test_other_frequencies(frequency, last, now, due):
    day = lambda s: datetime.fromisoformat(s).replace(hour=12, tzinfo=UTC)  # noqa: E731
    assert is_due(frequency, day(last), day(now), UTC) is due


# --- rotate N ----------------------------------------------------------------------------------


def test_rotate_30_keeps_30(logs):
    """"Log files are rotated count times before being removed": .1.gz newest … .30.gz oldest."""
    vault = Vaultish()
    (logs / "app.log").write_text("generation 0\n")
    rotation(logs, now=DAY0, vault=vault).run()
    for day in range(1, 33):
        (logs / "app.log").write_text(f"generation {day}\n")
        rotation(logs, now=DAY0 + timedelta(days=day), vault=vault).run()
    rotated = [n for n in names(logs) if n != "app.log"]
    assert sorted(rotated) == sorted(f"app.log.{i}.gz" for i in range(1, 31))
    assert gzip.decompress((logs / "app.log.1.gz").read_bytes()) == b"generation 32\n"  # newest
    assert gzip.decompress((logs / "app.log.30.gz").read_bytes()) == b"generation 3\n"  # oldest kept
    # generations 1 and 2 fell off, but only after the vault had them: every generation was shipped once
    assert len(vault.shipped) == len(vault.hashes()) == 32


def test_rotate_count_prunes_only_what_the_vault_has(logs):
    vault = Vaultish()
    s = settings(rotate=2)
    (logs / "app.log").write_text("g0\n")
    rotation(logs, now=DAY0, vault=vault, settings=s).run()
    for day in (1, 2):
        (logs / "app.log").write_text(f"g{day}\n")
        rotation(logs, now=DAY0 + timedelta(days=day), vault=vault, settings=s).run()
    vault.fail = True
    (logs / "app.log").write_text("g3\n")
    with pytest.raises(RuntimeError, match="vault unreachable"):
        rotation(logs, now=DAY0 + timedelta(days=3), vault=vault, settings=s).run()
    # rotated and compressed, but .3 (past `rotate 2`) is kept: g3's copy is not in the vault yet
    assert names(logs) == ["app.log", "app.log.1.gz", "app.log.2.gz", "app.log.3.gz"]
    vault.fail = False
    report = rotation(logs, now=DAY0 + timedelta(days=3, hours=1), vault=vault, settings=s).run()
    assert report["shipped"]["files"] == 1 and report["pruned"] == ["app.log.3.gz"]
    assert names(logs) == ["app.log", "app.log.1.gz", "app.log.2.gz"]


def test_rotate_0_removes_old_versions_once_shipped(logs):
    """"If count is 0, old versions are removed rather than rotated"."""
    vault = Vaultish()
    report = seen_then_rotated(logs, {"app.log": "x\n"}, vault=vault, settings=settings(rotate=0))
    assert report["pruned"] == ["app.log.1.gz"] and names(logs) == ["app.log"]
    assert len(vault.shipped) == 1


# --- compress ------------------------------------------------------------------------------------


def test_compress(logs):
    """"Old versions of log files are compressed with gzip(1)", compressoptions default "-6";
    delaycompress is not set, so the version rotated now is compressed now."""
    text = "".join(f"2026-11-27T00:00:{i % 60:02d} INFO request handled id={i}\n" for i in range(20000))
    (logs / "app.log").write_text(text)
    os.chmod(logs / "app.log", 0o640)
    os.utime(logs / "app.log", (1_700_000_000, 1_700_000_000))
    report = seen_then_rotated(logs, {}, settings=settings())
    assert names(logs) == ["app.log", "app.log.1.gz"]  # no uncompressed .1 left
    gz = logs / "app.log.1.gz"
    assert gzip.decompress(gz.read_bytes()).decode() == text
    assert subprocess.run(["gzip", "-t", str(gz)]).returncode == 0  # gzip(1) itself accepts it
    gzip_cli = len(subprocess.run(["gzip", "-6", "-c"], input=text.encode(), capture_output=True).stdout)
    assert abs(gz.stat().st_size - gzip_cli) / gzip_cli < 0.1  # same level as gzip -6 (not -1 or -9)
    assert gz.stat().st_mode & 0o777 == 0o640 and gz.stat().st_mtime == 1_700_000_000  # kept, as gzip does
    assert report["compressed"] == [{"file": "app.log.1.gz", "bytes": len(text), "gz_bytes": gz.stat().st_size}]


def test_nocompress(logs):
    seen_then_rotated(logs, {"app.log": "plain\n"}, settings=settings(compress=False))
    assert names(logs) == ["app.log", "app.log.1"] and (logs / "app.log.1").read_text() == "plain\n"


# --- missingok -----------------------------------------------------------------------------------


def test_missingok(logs, tmp_path):
    """missingok: "If the log file is missing, go on to the next one without issuing an error
    message"; nomissingok: "If a log file does not exist, issue an error"."""
    report = rotation(logs).run()  # nothing matches *.log
    assert report["rotated"] == [] and report["errors"] == []
    with pytest.raises(RotationError, match=r"no file in .* matches '\*\.log' \(and missingok is off\)"):
        rotation(logs, settings=settings(missingok=False)).run()
    gone = tmp_path / "no-such-dir"
    assert rotation(gone).run()["skipped"] == {"*": f"{gone} does not exist (missingok)"}
    with pytest.raises(RotationError, match="does not exist"):
        rotation(gone, settings=settings(missingok=False)).run()


# --- notifempty / ifempty -------------------------------------------------------------------


def test_notifempty_skips_empty(logs):
    """"Do not rotate the log if it is empty" — also when forced."""
    report = seen_then_rotated(logs, {"app.log": "line\n", "mongodb.log": ""})
    assert [r["log"] for r in report["rotated"]] == ["app.log"]
    assert report["skipped"]["mongodb.log"] == "empty (notifempty)"
    forced = rotation(logs, now=DAY0 + timedelta(days=1, hours=1), force=True).run()
    assert "mongodb.log" not in [r["log"] for r in forced["rotated"]]
    assert not any(n.startswith("mongodb.log.") for n in names(logs))


def test_ifempty_rotates_empty(logs):
    """ifempty: "Rotate the log file even if it is empty"."""
    report = seen_then_rotated(logs, {"mongodb.log": ""}, settings=settings(notifempty=False))
    assert [r["log"] for r in report["rotated"]] == ["mongodb.log"]
    assert "mongodb.log.1.gz" in names(logs)


# --- create ----------------------------------------------------------------------------------------


def test_create_mode_0644(logs):
    """"Immediately after rotation (before the postrotate script is run) the log file is created
    … mode specifies the mode for the log file in octal", whatever the umask."""
    (logs / "app.log").write_text("x\n")
    os.chmod(logs / "app.log", 0o600)
    seen = {}

    def postrotate():
        st = os.stat(logs / "app.log")
        seen.update(exists=True, size=st.st_size, mode=st.st_mode & 0o777)

    old_umask = os.umask(0o077)
    try:
        rotation(logs).run()
        rotation(logs, now=DAY0 + timedelta(days=1), postrotate=postrotate,
                 settings=parse_rotation_settings({})).run()  # the runbook's create 0644 www-data www-data
    finally:
        os.umask(old_umask)
    assert seen == {"exists": True, "size": 0, "mode": 0o644}
    st = os.stat(logs / "app.log")
    if os.geteuid() == 0:  # owner/group are applied when running with the rights to
        import pwd

        assert (st.st_uid, st.st_gid) == (pwd.getpwnam("www-data").pw_uid, pwd.getpwnam("www-data").pw_gid)
    else:
        assert st.st_uid == os.geteuid()


def test_create_omitted_attributes_keep_the_old_files(logs):
    """"Any of the log file attributes may be omitted, in which case those attributes for the new
    file will use the same values as the original log file"."""
    (logs / "app.log").write_text("x\n")
    os.chmod(logs / "app.log", 0o640)
    seen_then_rotated(logs, {}, settings=parse_rotation_settings({"create": {}}))
    assert os.stat(logs / "app.log").st_mode & 0o777 == 0o640


def test_create_owner_not_applied_without_rights_is_a_note(logs, monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 4242)  # pretend: not root, not www-data
    report = seen_then_rotated(logs, {"app.log": "x\n"}, settings=parse_rotation_settings({}))
    assert report["rotated"] and "not applied: only root may give files away" in report["notes"][0]
    assert os.stat(logs / "app.log").st_mode & 0o777 == 0o644  # the mode still is


@pytest.mark.parametrize("field", ["owner", "group"])
def test_create_unknown_user_or_group_fails_before_any_file_is_touched(logs, field):
    (logs / "app.log").write_text("x\n")
    rotation(logs).run()
    before = {p.name: (p.read_bytes(), p.stat().st_ino) for p in logs.iterdir()}
    bad = parse_rotation_settings({"create": {"mode": "0644", field: "no-such-gravitypm-id"}})
    with pytest.raises(RotationError, match=rf"{'user' if field == 'owner' else 'group'} 'no-such-gravitypm-id' "
                                            r"does not exist on this host; nothing was rotated"):
        rotation(logs, now=DAY0 + timedelta(days=1), settings=bad).run()
    assert {p.name: (p.read_bytes(), p.stat().st_ino) for p in logs.iterdir()} == before


def test_nocreate(logs):
    """nocreate: "New log files are not created" (the writer makes it when it reopens)."""
    seen_then_rotated(logs, {"app.log": "x\n"}, settings=settings(create=False))
    assert names(logs) == ["app.log.1.gz"]


# --- postrotate ------------------------------------------------------------------------------


def test_postrotate_runs_once(logs):
    """Once per run for the whole pattern (sharedscripts semantics, see log_rotation.py), after every
    log was renamed and created and before anything is compressed; not at all when nothing rotated."""
    calls = []

    def postrotate():
        calls.append(sorted(names(logs)))
        return {"action": "restart_logging", "returncode": 0}

    for name in ("app.log", "access.log", "mongodb.log"):
        (logs / name).write_text(f"{name}\n")
    rotation(logs, postrotate=postrotate).run()
    assert calls == []  # first sight: nothing rotated, no restart
    report = rotation(logs, now=DAY0 + timedelta(days=1), postrotate=postrotate).run()
    assert len(calls) == 1
    assert calls[0] == ["access.log", "access.log.1", "app.log", "app.log.1", "mongodb.log", "mongodb.log.1"]
    assert report["postrotate"] == {"status": "ok", "action": "restart_logging", "returncode": 0}
    assert rotation(logs, now=DAY0 + timedelta(days=1, hours=1), postrotate=postrotate).run()["postrotate"] is None
    assert len(calls) == 1


def test_postrotate_failure_is_reported_and_loses_nothing(logs):
    vault = Vaultish()

    def broken():
        raise RuntimeError("restart_logging: docker compose exited with 1: no such service: logging")

    (logs / "app.log").write_text("before rotation\n")
    rotation(logs, vault=vault).run()
    report = rotation(logs, now=DAY0 + timedelta(days=1), vault=vault, postrotate=broken).run()
    assert report["postrotate"]["status"] == "failed"
    assert "postrotate restart_logging failed: restart_logging: docker compose exited with 1" in report["errors"][0]
    # the writer may still be writing into app.log.1: not compressed, not shipped, not removed
    assert names(logs) == ["app.log", "app.log.1"] and vault.shipped == []
    with open(logs / "app.log.1", "a") as late:
        late.write("written before the writer reopened\n")
    # next run (or retry): postrotate again first, then compress and ship
    calls = []
    fixed = rotation(logs, now=DAY0 + timedelta(days=1, hours=1), vault=vault, postrotate=lambda: calls.append(1)).run()
    assert calls == [1] and fixed["errors"] == [] and fixed["rotated"] == []
    assert gzip.decompress((logs / "app.log.1.gz").read_bytes()) == (
        b"before rotation\nwritten before the writer reopened\n")
    assert len(vault.shipped) == 1


# --- copytruncate -------------------------------------------------------------------------


def test_copytruncate(logs):
    """"Truncate the original log file to zero size in place after creating a copy … When this
    option is used, the create option will have no effect, as the old log file stays in place"."""
    (logs / "app.log").write_text("one\ntwo\n")
    os.chmod(logs / "app.log", 0o600)
    inode = os.stat(logs / "app.log").st_ino
    rotation(logs).run()
    with open(logs / "app.log", "a") as writer:  # a writer that never reopens
        report = rotation(logs, now=DAY0 + timedelta(days=1), settings=settings(copytruncate=True)).run()
        writer.write("three\n")
    assert report["rotated"] == [{"log": "app.log", "to": "app.log.1", "bytes": 8}]
    st = os.stat(logs / "app.log")
    assert st.st_ino == inode and st.st_mode & 0o777 == 0o600  # same file; create 0644 had no effect
    assert (logs / "app.log").read_text() == "three\n"  # truncated, and O_APPEND writes land at 0
    assert gzip.decompress((logs / "app.log.1.gz").read_bytes()) == b"one\ntwo\n"


# --- the writer contract: no line lost or duplicated ---------------------------------------------

WRITER = r"""
import os, signal, sys, time
path, done = sys.argv[1], sys.argv[2]
reopen = stop = False
def on_hup(*_):
    global reopen
    reopen = True
def on_term(*_):
    global stop
    stop = True
signal.signal(signal.SIGHUP, on_hup)
signal.signal(signal.SIGTERM, on_term)
f = open(path, "a", buffering=1)
n = 0
print("ready", flush=True)
while not stop:
    if reopen:  # the contract: keep the file open, reopen it when told (logrotate's create + postrotate)
        reopen = False
        f.close()
        f = open(path, "a", buffering=1)
    f.write(f"line {n:08d} " + "x" * (n % 50) + "\n")
    n += 1
    if n % 20 == 0:
        time.sleep(0.001)
f.close()
with open(done, "w") as out:
    out.write(str(n))
"""


def test_concurrent_writer_loses_and_duplicates_no_line(logs, tmp_path):
    script, done = tmp_path / "writer.py", tmp_path / "written"
    script.write_text(WRITER)
    writer = subprocess.Popen([sys.executable, str(script), str(logs / "app.log"), str(done)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "ready"
        vault = Vaultish()
        rotation(logs, vault=vault).run()
        for i in range(1, 7):
            time.sleep(0.15)
            report = rotation(logs, now=DAY0 + timedelta(days=i), vault=vault,
                              postrotate=lambda: os.kill(writer.pid, signal.SIGHUP), settle=0.1).run()
            assert report["rotated"] and report["errors"] == [], report
    finally:
        writer.send_signal(signal.SIGTERM)
        writer.wait(timeout=10)
    written = int(done.read_text())
    lines = []
    for i in range(6, 0, -1):  # oldest first
        lines += gzip.decompress((logs / f"app.log.{i}.gz").read_bytes()).decode().splitlines()
    lines += (logs / "app.log").read_text().splitlines()
    numbers = [int(line.split()[1]) for line in lines]
    assert written > 1000  # it really wrote throughout
    assert numbers == list(range(written))  # every line exactly once, in order
    assert len(vault.shipped) == 6


# --- shipping bookkeeping, state, lock ----------------------------------------------------------


def test_a_file_already_shipped_is_not_shipped_twice(logs):
    vault = Vaultish()
    seen_then_rotated(logs, {"app.log": "one\n"}, vault=vault)
    (logs / "app.log").write_text("two\n")
    report = rotation(logs, now=DAY0 + timedelta(days=2), vault=vault).run()
    assert report["shipped"]["files"] == 1  # only the new .1.gz; the old one is now .2.gz, same bytes
    assert len(vault.shipped) == 2 == len(vault.hashes())
    # Local ledger lost (e.g. a new host): the vault's manifests say what it has.
    (logs / STATE_NAME).unlink()
    again = rotation(logs, now=DAY0 + timedelta(days=2, hours=1), vault=vault,
                     shipped_elsewhere=vault.hashes).run()
    assert again["shipped"] == {"files": 0} and len(vault.shipped) == 2


def test_state_is_bounded_to_files_still_present(logs):
    vault = Vaultish()
    s = settings(rotate=1)
    (logs / "app.log").write_text("g0\n")
    rotation(logs, vault=vault, settings=s).run()
    for day in range(1, 6):
        (logs / "app.log").write_text(f"g{day}\n")
        rotation(logs, now=DAY0 + timedelta(days=day), vault=vault, settings=s).run()
    state = load_state(str(logs))
    assert len(state["shipped"]) == 1 and len(state["files"]) == 1 and state["awaiting_reopen"] == []


def test_two_rotations_never_overlap(logs):
    (logs / "app.log").write_text("x\n")
    with locked(str(logs)):
        with pytest.raises(RotationError, match=f"another log rotation is running .*{LOCK_NAME}"):
            rotation(logs).run()


def test_pattern_never_picks_rotated_files(logs):
    s = settings(pattern="*")
    seen_then_rotated(logs, {"app.log": "x\n"}, settings=s)
    (logs / "app.log").write_text("y\n")
    report = rotation(logs, now=DAY0 + timedelta(days=2), settings=s).run()
    assert [r["log"] for r in report["rotated"]] == ["app.log"]
    assert names(logs) == ["app.log", "app.log.1.gz", "app.log.2.gz"]


def test_pattern_never_picks_the_leftover_of_an_interrupted_compression(logs):
    s = settings(pattern="*")
    (logs / "app.log").write_text("x\n")
    (logs / "app.log.1.gz.gravitypm-tmp").write_bytes(b"half a gzip")  # a crash mid-compression
    report = rotation(logs, settings=s, force=True).run()
    assert [r["log"] for r in report["rotated"]] == ["app.log"]
    assert names(logs) == ["app.log", "app.log.1.gz"]  # the leftover was removed, not rotated


def test_defaults_constant_is_not_mutated():
    parse_rotation_settings({"rotate": 3})
    parse_rotation_settings({})["create"]["mode"] = "0600"  # the nested default is copied too
    assert DEFAULT_SETTINGS["rotate"] == 30 and DEFAULT_SETTINGS["create"]["mode"] == "0644"
