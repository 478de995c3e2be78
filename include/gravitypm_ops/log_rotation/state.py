"""The rotation's state file (like logrotate's status file), its lock, and when a log is due."""

from __future__ import annotations

import json
import logging
import os
from contextlib import contextmanager
from datetime import datetime, tzinfo

from gravitypm_ops.log_rotation.files import TMP_SUFFIX, RotationError

log = logging.getLogger(__name__)

STATE_NAME = ".gravitypm-logrotate.json"
LOCK_NAME = ".gravitypm-logrotate.lock"


def empty_state() -> dict:
    return {"schema": 1, "logs": {}, "awaiting_reopen": [], "files": {}, "shipped": {}}


def load_state(logs_dir: str) -> dict:
    path = os.path.join(logs_dir, STATE_NAME)
    try:
        with open(path) as f:
            state = json.load(f)
    except FileNotFoundError:
        return empty_state()
    except (OSError, ValueError) as err:
        raise RotationError(f"{path}: unreadable rotation state ({err}); move it aside to start afresh") from None
    return {**empty_state(), **state}


def save_state(logs_dir: str, state: dict) -> None:
    path = os.path.join(logs_dir, STATE_NAME)
    tmp = path + TMP_SUFFIX
    with open(tmp, "w") as f:
        json.dump(state, f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


@contextmanager
def locked(logs_dir: str):
    import fcntl

    fd = os.open(os.path.join(logs_dir, LOCK_NAME), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RotationError(f"another log rotation is running in {logs_dir} (lock {LOCK_NAME})") from None
        yield
    finally:
        os.close(fd)


def is_due(frequency: str, last: datetime, now: datetime, tz: tzinfo) -> bool:
    """logrotate's time criteria on calendar dates in `tz`."""
    last_day, today = last.astimezone(tz).date(), now.astimezone(tz).date()
    if frequency == "daily":
        return today != last_day
    if frequency == "weekly":  # "once each weekday [Sunday], or if the date is advanced by at least 7 days"
        return (today - last_day).days >= 7 or (today.isoweekday() == 7 and today != last_day)
    if frequency == "monthly":
        return (today.year, today.month) != (last_day.year, last_day.month)
    if frequency == "yearly":
        return today.year != last_day.year
    raise ValueError(f"unknown frequency {frequency!r}")
