"""The embedded local stack: real servers on loopback standing in for production.

    S3       moto_server, vault bucket created with versioning on
    MongoDB  mongoeco's wire-protocol server, seeded with gravitypm_production
    Slack    dev/slack_receiver.py (records webhook posts; page at its URL)
    host     dev/prod_host.py (the /opt/gravitypm/production tree + /health endpoints)

Used by `make up` (dev/up.py) and by the tests' session fixture, so the tests exercise
the very stack a developer runs. Every service runs in its own process group and is
stopped with SIGINT first, then SIGTERM, then SIGKILL: nothing is left running.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

SLACK_WEBHOOK_TOKEN_PREFIX = "T0LOCAL/B0LOCAL/"


# The vault hygiene README recommends (and checks.check_vault_hygiene checks).
VAULT_LIFECYCLE = {
    "Rules": [
        {
            "ID": "gravitypm-vault-hygiene",
            "Status": "Enabled",
            "Filter": {"Prefix": ""},
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
            "NoncurrentVersionExpiration": {"NoncurrentDays": 30},
        }
    ]
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float, proc: subprocess.Popen | None = None, name: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{name} exited with code {proc.returncode} during start-up")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"{name or 'service'} did not listen on 127.0.0.1:{port} within {timeout:.0f}s")


def _restore_sigint():
    # Children of a background shell job inherit SIGINT=ignored; we stop them with SIGINT.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def spawn(argv: list[str], log_path: Path, env: dict | None = None) -> subprocess.Popen:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        return subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            start_new_session=True,  # own process group: we decide when it gets a signal
            preexec_fn=_restore_sigint,
            cwd=REPO,
        )


def stop_process(proc: subprocess.Popen, grace: float = 20.0) -> None:
    """SIGINT the leader (it stops its own children), then escalate on the whole process group.

    Returns once every member of the group is gone.
    """
    steps = ((proc.send_signal, signal.SIGINT, grace), (_killpg(proc), signal.SIGTERM, 5.0),
             (_killpg(proc), signal.SIGKILL, 5.0))
    for send, sig, wait in steps:
        try:
            send(sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            proc.poll()
            if not _group_alive(proc.pid):
                return
            time.sleep(0.1)
    proc.wait(timeout=5)


def _killpg(proc: subprocess.Popen):
    return lambda sig: os.killpg(proc.pid, sig)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # Zombies of our own children still count as members until reaped.
    return any(_pgid_of(pid) == pgid for pid in _pids())


def _pids():
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def _pgid_of(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields_ = stat.rsplit(")", 1)[1].split()
    if fields_[0] == "Z":
        return None
    return int(fields_[2])


@dataclass
class Secrets:
    """Per-state-dir fake credentials, so leak tests can grep for real values."""

    mongo_user: str
    mongo_password: str
    aws_access_key_id: str
    aws_secret_access_key: str
    slack_token: str
    # The HMAC key of the gravitypm_signing_key connection: every local stack signs what it writes.
    signing_key: str = ""
    # Two age identities whose public keys are the recipients of every encrypted backup: "ops" (the
    # gravitypm_backup_identity connection) and "recovery" (kept only here, like a key in a safe).
    age_ops_identity: str = ""
    age_recovery_identity: str = ""

    @staticmethod
    def _age_keys() -> dict:
        from pyrage import x25519

        return {f"age_{role}_identity": str(x25519.Identity.generate()) for role in ("ops", "recovery")}

    @property
    def age_recipients(self) -> list[str]:
        """The public keys (encryption_recipients): ops first, then recovery."""
        from pyrage import x25519

        return [str(x25519.Identity.from_str(i).to_public()) for i in (self.age_ops_identity, self.age_recovery_identity)]

    @classmethod
    def load_or_create(cls, path: Path) -> Secrets:
        if path.exists():
            loaded = cls(**json.loads(path.read_text()))
            if loaded.signing_key and loaded.age_ops_identity:
                return loaded
            # A state dir from before signing or encryption: keep its secrets, add what is missing.
            made = cls(**{**loaded.__dict__, "signing_key": loaded.signing_key or "hmac-" + secrets.token_hex(32),
                          **({} if loaded.age_ops_identity else cls._age_keys())})
        else:
            made = cls(
                mongo_user="gravitypm_ops",
                mongo_password="mongo-" + secrets.token_hex(12),
                aws_access_key_id="AKIA" + secrets.token_hex(8).upper(),
                aws_secret_access_key="aws-" + secrets.token_hex(16),
                slack_token=SLACK_WEBHOOK_TOKEN_PREFIX + secrets.token_hex(12),
                signing_key="hmac-" + secrets.token_hex(32),
                **cls._age_keys(),
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(made.__dict__))
        path.chmod(0o600)
        return made


@dataclass
class LocalStack:
    state_dir: Path
    vault_bucket: str = "gravitypm-vault"
    # "sqlite" persists across restarts (make up); "memory" inserts ~6x faster (the tests).
    mongo_engine: str = "sqlite"
    ports: dict[str, int] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    def __post_init__(self):
        self.state_dir = Path(self.state_dir).resolve()
        self.secrets = Secrets.load_or_create(self.state_dir / "secrets.json")
        for name in ("s3", "mongo", "slack", "host"):
            self.ports.setdefault(name, free_port())

    # --- locations -------------------------------------------------------------------
    @property
    def app_root(self) -> Path:
        return self.state_dir / "host" / "opt" / "gravitypm" / "production"

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    # --- lifecycle -------------------------------------------------------------------
    def commands(self) -> dict[str, tuple[list[str], dict]]:
        py = sys.executable
        return {
            "s3": ([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(self.ports["s3"])], {}),
            "mongo": (
                [py, "dev/mongo_server.py", "--host", "127.0.0.1", "--port", str(self.ports["mongo"]),
                 "--data-dir", str(self.state_dir / "mongo"), "--engine", self.mongo_engine],
                {"GRAVITYPM_MONGO_USER": self.secrets.mongo_user,
                 "GRAVITYPM_MONGO_PASSWORD": self.secrets.mongo_password},
            ),
            "slack": (
                [py, "dev/slack_receiver.py", "--port", str(self.ports["slack"]),
                 "--log", str(self.state_dir / "slack" / "messages.jsonl")],
                {},
            ),
            "host": (
                [py, "dev/prod_host.py", "--root", str(self.app_root), "--port", str(self.ports["host"]),
                 "--mongo-port", str(self.ports["mongo"])],
                {},
            ),
        }

    def start(self, *names: str, timeout: float = 60.0) -> None:
        names = names or tuple(self.commands())
        commands = self.commands()
        for name in names:
            argv, env = commands[name]
            self.procs[name] = spawn(argv, self.logs_dir / f"{name}.log", env)
        for name in names:
            wait_for_port(self.ports[name], timeout, self.procs[name], name)
        if "s3" in names:
            self._create_vault_bucket()
        if "mongo" in names:
            self._wait_for_mongo_seed(timeout)

    def stop(self, *names: str) -> None:
        for name in names or list(self.procs):
            proc = self.procs.pop(name, None)
            if proc is not None:
                stop_process(proc)

    def __enter__(self) -> LocalStack:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def s3_client(self):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.url("s3"),
            region_name="us-east-1",
            aws_access_key_id=self.secrets.aws_access_key_id,
            aws_secret_access_key=self.secrets.aws_secret_access_key,
        )

    def mongo_client(self, **kwargs):
        import pymongo

        return pymongo.MongoClient(
            host="127.0.0.1",
            port=self.ports["mongo"],
            username=self.secrets.mongo_user,
            password=self.secrets.mongo_password,
            authSource="admin",
            directConnection=True,
            serverSelectionTimeoutMS=10_000,
            **kwargs,
        )

    def _create_vault_bucket(self) -> None:
        s3 = self.s3_client()
        existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
        if self.vault_bucket not in existing:
            s3.create_bucket(Bucket=self.vault_bucket)
        s3.put_bucket_versioning(Bucket=self.vault_bucket, VersioningConfiguration={"Status": "Enabled"})
        s3.put_bucket_lifecycle_configuration(Bucket=self.vault_bucket, LifecycleConfiguration=VAULT_LIFECYCLE)

    def _wait_for_mongo_seed(self, timeout: float) -> None:
        # The server prints READY only after seeding; the port opens earlier.
        log = self.logs_dir / "mongo.log"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "READY" in log.read_text(errors="replace"):
                return
            if self.procs["mongo"].poll() is not None:
                raise RuntimeError(f"mongo server exited; see {log}")
            time.sleep(0.2)
        raise TimeoutError(f"mongo server not ready within {timeout:.0f}s; see {log}")

    # --- what Airflow needs to use this stack --------------------------------------------
    def connections(self) -> dict[str, dict]:
        s = self.secrets
        return {
            "gravitypm_aws": {
                "conn_type": "aws",
                "login": s.aws_access_key_id,
                "password": s.aws_secret_access_key,
                "extra": {"endpoint_url": self.url("s3"), "region_name": "us-east-1"},
            },
            "gravitypm_mongo": {
                "conn_type": "mongo",
                "host": "127.0.0.1",
                "port": self.ports["mongo"],
                "login": s.mongo_user,
                "password": s.mongo_password,
                "extra": {"authSource": "admin", "directConnection": True},
            },
            "gravitypm_slack": {
                "conn_type": "slackwebhook",
                "host": f"{self.url('slack')}/services",
                "password": s.slack_token,
            },
            "gravitypm_signing_key": {"conn_type": "generic", "password": s.signing_key},
            # Only the ops identity: the recovery one is for restores by hand (README).
            "gravitypm_backup_identity": {"conn_type": "generic", "password": s.age_ops_identity},
        }

    def signer(self):
        """What the DAGs sign and check with (the gravitypm_signing_key connection), for tests that
        write or read the vault directly."""
        from gravitypm_ops.vault.signing import Signer

        return Signer.from_password(self.secrets.signing_key)

    def service_commands(self) -> dict[str, list[str]]:
        """Service control driving the dev host process (the runbook uses docker compose)."""
        ctl = [sys.executable, str(REPO / "dev" / "host_ctl.py"), "--url", self.url("host")]
        return {
            "stop_app": [*ctl, "stop", "app"],
            "start_app": [*ctl, "start", "app"],
            "restart_logging": [*ctl, "restart", "logging"],
        }

    def ops_config(self) -> dict:
        """The gravitypm_ops Variable pointing the suite at this stack."""
        host = self.url("host")
        return {
            "service_commands": self.service_commands(),
            "vault_bucket": self.vault_bucket,
            "vault_prefix": "production",
            "app_root": str(self.app_root),
            "encryption_recipients": self.secrets.age_recipients,
            "health_urls": {
                "application": f"{host}/health",
                "database": f"{host}/health/db",
                "cache": f"{host}/health/redis",
            },
        }

    def airflow_env(self) -> dict[str, str]:
        env = {f"AIRFLOW_CONN_{cid.upper()}": json.dumps(c) for cid, c in self.connections().items()}
        env["AIRFLOW_VAR_GRAVITYPM_OPS"] = json.dumps(self.ops_config())
        return env


def repo_airflow_env(airflow_home: Path) -> dict[str, str]:
    """Airflow pointed at this repository's dags/, plugins/ and include/ (no examples)."""
    return {
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "PYTHONPATH": os.pathsep.join(p for p in (str(REPO / "include"), os.environ.get("PYTHONPATH")) if p),
    }
