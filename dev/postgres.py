"""The local stack's Postgres metadata DB (`python -m dev.up --metadb postgres`), started by the project.

A cluster of its own in <state>/postgres (initdb on the first start, reused after), listening on 127.0.0.1:<port>
and on a Unix socket inside the data dir, with a database and login `airflow` (password in
<state>/postgres_password, 0600). The server runs in the foreground in its own process group and is stopped
like every other local service: SIGINT = Postgres's "fast shutdown" (dev/stack.py stop_process).

Postgres refuses to run as root. As root the server and initdb run inside a user namespace of their own that
maps the `postgres` OS user onto root (`unshare --user --map-user=postgres`): Postgres sees a non-root owner
of its data dir, while the kernel still sees root, so the data stays root-owned in the state dir and no
directory above it has to be opened to another user. As any other user they run as that user.
"""

from __future__ import annotations

import glob
import os
import secrets
import shlex
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from dev.stack import free_port, spawn, stop_process, wait_for_port

SUPERUSER = "postgres"  # the cluster's superuser; only reachable over the data dir's Unix socket (trust)
DB = USER = "airflow"
DEFAULT_PORT = 15432  # not 5432/5433: those belong to a system cluster, if one ever runs


def pg_bin() -> Path:
    """The newest installed PostgreSQL's binaries (Debian: /usr/lib/postgresql/<major>/bin)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda p: int(Path(p).parts[-3]))
    if not found:
        raise RuntimeError("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/postgres): apt-get install "
                           "postgresql, or use --metadb sqlite")
    return Path(found[-1]).parent


def as_cluster_owner(argv: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return argv
    return ["unshare", "--user", f"--map-user={SUPERUSER}", f"--map-group={SUPERUSER}", *argv]


@dataclass
class Postgres:
    state_dir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None

    @property
    def data_dir(self) -> Path:
        return self.state_dir / "postgres"

    @property
    def log_path(self) -> Path:
        return self.state_dir / "logs" / "postgres.log"

    def password(self) -> str:
        path = self.state_dir / "postgres_password"
        if not path.exists():
            path.write_text(secrets.token_urlsafe(24))
            path.chmod(0o600)
        return path.read_text().strip()

    def sql_alchemy_conn(self) -> str:
        return f"postgresql+psycopg2://{USER}:{self.password()}@127.0.0.1:{self.port}/{DB}"

    def airflow_env(self) -> dict[str, str]:
        """Airflow's DB URL as `_CMD` reading a 0600 file, not as the plain variable: the password stays out of
        the environment and stack.env, and the control-plane tasks' DB subprocesses find it (the task supervisor
        overwrites only the plain variable, and a LocalExecutor worker's /proc/self/environ, where
        gravitypm_ops.airflow.control_plane looks for the original, is clobbered by its process title)."""
        path = self.state_dir / "airflow_sql_alchemy_conn"
        path.touch(mode=0o600)
        path.write_text(self.sql_alchemy_conn())  # no newline: Airflow uses the command's output as it is
        return {"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_CMD": f"cat {shlex.quote(str(path))}"}

    def start(self, timeout: float = 60.0) -> None:
        pg = pg_bin()
        if not (self.data_dir / "PG_VERSION").exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            done = subprocess.run(
                as_cluster_owner([str(pg / "initdb"), "-D", str(self.data_dir), "-U", SUPERUSER, "-E", "UTF8",
                                  "--locale=C.UTF-8", "--auth-local=trust", "--auth-host=scram-sha-256"]),
                capture_output=True, text=True, check=False,
            )
            if done.returncode != 0:
                raise RuntimeError(f"initdb of {self.data_dir} failed (exit {done.returncode}): "
                                   f"{(done.stdout + done.stderr).strip()[-1500:]}")
        self.proc = spawn(
            as_cluster_owner([str(pg / "postgres"), "-D", str(self.data_dir), "-c", "listen_addresses=127.0.0.1",
                              "-c", f"port={self.port}", "-c", f"unix_socket_directories={self.data_dir}"]),
            self.log_path,
        )
        wait_for_port(self.port, timeout, self.proc, "postgres")
        self._ensure_airflow_db(timeout)

    def _ensure_airflow_db(self, timeout: float) -> None:
        import psycopg2

        deadline = time.monotonic() + timeout
        while True:  # the port opens before recovery after a crash has finished
            try:
                conn = psycopg2.connect(host=str(self.data_dir), port=self.port, user=SUPERUSER, dbname="postgres")
                break
            except psycopg2.OperationalError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise
                time.sleep(0.2)
        conn.autocommit = True  # CREATE DATABASE refuses to run in a transaction
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (USER,))
                verb = "ALTER" if cur.fetchone() else "CREATE"
                cur.execute(f"{verb} ROLE {USER} LOGIN PASSWORD %s", (self.password(),))  # the file decides
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DB,))
                if not cur.fetchone():
                    cur.execute(f"CREATE DATABASE {DB} OWNER {USER}")
        finally:
            conn.close()

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, grace=30)  # SIGINT: fast shutdown (a checkpoint, then exit)
            self.proc = None
