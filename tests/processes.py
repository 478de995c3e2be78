"""Process helpers for tests: the process tree (to prove nothing is left running), reading a child's output,
and Debian tools a test needs, installed when missing."""

import os
import shutil
import subprocess
import time
from pathlib import Path


def descendants(pid: int) -> set[int]:
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError):
                continue
            children.setdefault(ppid, set()).add(int(entry))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), ()):
            found.add(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def read_until(proc, marker: str, timeout: float) -> str:
    out, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        out.append(line)
        if marker in line:
            return "".join(out)
    raise AssertionError(f"{marker!r} not printed within {timeout}s; output:\n{''.join(out)}")


def cmdline(pid: int) -> str:
    """A process's command line (its title, for processes that set one), "" once it is gone."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def postgres_pids(data_dir) -> list[int]:
    """Every live process serving this Postgres data dir (the postmaster's children carry no -D: they are
    found through it)."""
    leaders = [int(p) for p in os.listdir("/proc") if p.isdigit() and f"-D {data_dir} " in cmdline(int(p)) + " "]
    return [pid for pid in {*leaders, *(c for pid in leaders for c in descendants(pid))} if alive(pid)]


def find_or_install(binary: str, package: str, what: str) -> str:
    """The path of `binary`; when missing, Debian `package` is installed with apt-get (as root, or with
    password-less sudo), so a clean clone's `make test` gets it without a step of its own."""
    import pytest

    found = shutil.which(binary)
    if found:
        return found
    apt = ["apt-get"] if os.geteuid() == 0 else ["sudo", "-n", "apt-get"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = subprocess.run([*apt, "install", "-y", "-q", package], capture_output=True, text=True, env=env, check=False)
    if install.returncode != 0:  # a fresh machine may have no package lists yet
        subprocess.run([*apt, "update", "-q"], capture_output=True, env=env, check=False)
        install = subprocess.run([*apt, "install", "-y", "-q", package], capture_output=True, text=True, env=env,
                                 check=False)
    found = shutil.which(binary)
    if not found:
        pytest.fail(f"{what} is needed and could not be installed ({' '.join(apt)} install {package}):\n"
                    f"{install.stderr[-2000:]}")
    return found
