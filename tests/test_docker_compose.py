"""Static checks of the deployment files: docker-compose.yaml, Dockerfile, deploy/.

There is no Docker engine where these run, so the compose stack is validated by parsing:
its structure, and its agreement with the library (connection ids, pools, config keys)
and with the other deployment files.
"""

from __future__ import annotations

import base64
import importlib.metadata
import json
import re
import zoneinfo
from pathlib import Path

import pytest
import yaml

from gravitypm_ops import names
from gravitypm_ops.config import OpsConfig, parse_config_json

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"
POOLS_FILE = ROOT / "deploy" / "pools.json"
ENV_EXAMPLE = ROOT / "deploy" / "airflow.env.example"
REQUIREMENTS = ROOT / "requirements.txt"

AIRFLOW_LONG_RUNNING = {
    "airflow-apiserver": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-triggerer": "triggerer",
}
AIRFLOW_SERVICES = {"airflow-init", *AIRFLOW_LONG_RUNNING}
ONE_SHOT = {"airflow-init", "minio-init"}
DEMO_SERVICES = {"mongo", "minio", "minio-init"}
REQUIRED_SERVICES = {"postgres", *AIRFLOW_SERVICES, *DEMO_SERVICES}
ENV_FILE = "deploy/airflow.env"


# --- helpers --------------------------------------------------------------------------


def parse_env_file(text: str) -> dict[str, str]:
    """KEY=VALUE lines as docker compose reads an env_file; strict about what it accepts."""
    env: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep, f"line {number}: expected KEY=VALUE, got {raw!r}"
        assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key), f"line {number}: bad key {key!r}"
        assert key not in env, f"line {number}: {key} is set twice"
        env[key] = value
    return env


def command_text(service: dict) -> str:
    command = service.get("command", "")
    return command if isinstance(command, str) else "\n".join(map(str, command))


def volume_targets(service: dict) -> dict[str, str]:
    """container path -> 'source[:mode]' for short-syntax volumes."""
    out = {}
    for volume in service.get("volumes", []):
        assert isinstance(volume, str), f"use short volume syntax: {volume!r}"
        # The source may contain ${VAR:-default}, whose ':' is not a separator.
        match = re.fullmatch(r"(\$\{[^}]*\}|[^:]+):([^:]+)(?::(ro|rw))?", volume)
        assert match, f"unparsable volume {volume!r}"
        source, target, mode = match.groups()
        out[target] = f"{source}:{mode or 'rw'}"
    return out


def env_files(service: dict) -> list[str]:
    value = service.get("env_file", [])
    items = [value] if isinstance(value, str) else value
    return [item if isinstance(item, str) else item["path"] for item in items]


def connection_ids() -> set[str]:
    return {value for key, value in vars(names).items() if key.endswith("_CONN_ID")}


def expected_conn_type(conn_id: str) -> str:
    constant = next(key for key, value in vars(names).items() if key.endswith("_CONN_ID") and value == conn_id)
    for prefix, conn_type in (("MONGO", "mongo"), ("AWS", "aws"), ("SLACK", "slackwebhook"), ("METRICS", "generic"),
                               ("SIGNING", "generic")):
        if constant.startswith(prefix):
            return conn_type
    raise AssertionError(f"no known conn_type for {constant}")


class StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys, as docker compose does (PyYAML keeps the last)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.load(COMPOSE_FILE.read_text(), Loader=StrictLoader)


@pytest.fixture(scope="module")
def services(compose) -> dict[str, dict]:
    return compose["services"]


@pytest.fixture(scope="module")
def env() -> dict[str, str]:
    return parse_env_file(ENV_EXAMPLE.read_text())


@pytest.fixture(scope="module")
def dockerfile() -> str:
    return DOCKERFILE.read_text()


# --- compose structure ----------------------------------------------------------------


def test_required_services_exist(services):
    missing = REQUIRED_SERVICES - set(services)
    assert not missing, f"missing services: {sorted(missing)}"
    assert "airflow-webserver" not in services, "Airflow 3 has an api-server, not a webserver"


def test_long_running_services_have_healthchecks(services):
    for name, service in services.items():
        if name in ONE_SHOT:
            # A one-shot job must not be restarted once it has exited successfully.
            assert service.get("restart", "no") in ("no", "on-failure"), name
            continue
        check = service.get("healthcheck") or {}
        assert not check.get("disable"), f"{name}: healthcheck disabled"
        test = check.get("test")
        assert test and test not in (["NONE"], "NONE"), f"{name} has no healthcheck"
        assert service.get("restart") in ("always", "unless-stopped"), f"{name} is not restarted"


def test_airflow_components_run_airflow3_commands_with_their_healthchecks(services):
    for name, command in AIRFLOW_LONG_RUNNING.items():
        assert command_text(services[name]) == command, name
    expected_checks = {
        "airflow-apiserver": "http://localhost:8080/api/v2/version",
        "airflow-scheduler": "http://localhost:8974/health",
        "airflow-dag-processor": "--job-type DagProcessorJob",
        "airflow-triggerer": "--job-type TriggererJob",
    }
    for name, needle in expected_checks.items():
        test = services[name]["healthcheck"]["test"]
        assert needle in " ".join(test), f"{name}: healthcheck {test!r} lacks {needle!r}"
    # `$$` is compose's escape: the container's own $HOSTNAME, not one interpolated by compose.
    for name in ("airflow-dag-processor", "airflow-triggerer"):
        assert '--hostname "$${HOSTNAME}"' in " ".join(services[name]["healthcheck"]["test"]), name
    # The scheduler only serves :8974/health when told to.
    scheduler_env = services["airflow-scheduler"]["environment"]
    assert str(scheduler_env.get("AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK")).lower() == "true"


def test_airflow_services_wait_for_init_and_postgres(services):
    for name in AIRFLOW_LONG_RUNNING:
        depends = services[name].get("depends_on", {})
        assert isinstance(depends, dict), f"{name}: depends_on needs conditions"
        assert depends.get("airflow-init", {}).get("condition") == "service_completed_successfully", name
        assert depends.get("postgres", {}).get("condition") == "service_healthy", name
    init_depends = services["airflow-init"].get("depends_on", {})
    assert init_depends.get("postgres", {}).get("condition") == "service_healthy"


def test_airflow_init_migrates_and_imports_the_pools_the_image_ships(services, dockerfile):
    script = command_text(services["airflow-init"])
    assert "airflow db migrate" in script
    match = re.search(r"airflow pools import (\S+)", script)
    assert match, "airflow-init does not import pools"
    assert re.search(rf"^COPY\b.*\bdeploy/pools\.json\s+{re.escape(match.group(1))}\s*$", dockerfile, re.M), (
        f"the Dockerfile does not copy deploy/pools.json to {match.group(1)}"
    )


def test_one_shot_scripts_are_valid_shell(services):
    import shutil
    import subprocess

    for name, shell in (("airflow-init", "bash"), ("minio-init", "sh")):
        # The `-c` script (the command's last item), as the shell receives it once compose
        # has turned `$$` into `$`.
        command = services[name]["command"]
        script = (command[-1] if isinstance(command, list) else command).replace("$$", "$")
        assert "set -e" in script, f"{name}: a failing step must fail the job"
        result = subprocess.run([shutil.which(shell) or shell, "-n", "-c", script], capture_output=True, text=True)
        assert result.returncode == 0, f"{name}: {result.stderr}"


def test_airflow_common_environment(services):
    for name in AIRFLOW_SERVICES:
        environment = services[name]["environment"]
        assert environment["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor", name
        assert str(environment["AIRFLOW__CORE__LOAD_EXAMPLES"]).lower() == "false", name
        sql = environment["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
        assert sql.startswith("postgresql+psycopg2://") and "@postgres:" in sql, f"{name}: {sql}"
        # The execution API is served by the api-server service, on its container port.
        url = environment["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"]
        match = re.fullmatch(r"http://([a-z0-9-]+):(\d+)/execution/", url)
        assert match, f"{name}: {url}"
        host, port = match.groups()
        assert command_text(services.get(host, {})) == "api-server", f"{name}: {host} is not the api-server"
        published = [str(p).rsplit(":", 1)[-1] for p in services[host].get("ports", [])]
        assert port in published, f"{name}: the api-server listens on {published}, not {port}"
        # These come from the shared env file; `environment` would override it per service.
        for secret in ("AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__CORE__FERNET_KEY"):
            assert secret not in environment, f"{name}: {secret} must come from {ENV_FILE}"
        assert ENV_FILE in env_files(services[name]), f"{name} does not read {ENV_FILE}"


def test_airflow_secrets_in_env_example(env):
    from cryptography.fernet import Fernet

    assert len(env["AIRFLOW__API_AUTH__JWT_SECRET"]) >= 32
    fernet_key = env["AIRFLOW__CORE__FERNET_KEY"]
    Fernet(fernet_key.encode())  # raises unless a valid key
    # Placeholders only: the example must never carry a real secret.
    assert "change-me" in env["AIRFLOW__API_AUTH__JWT_SECRET"]
    assert b"change-me" in base64.urlsafe_b64decode(fernet_key)


def test_repo_code_and_production_root_are_mounted(services, dockerfile):
    pythonpath = re.search(r"^ENV PYTHONPATH=(\S+)", dockerfile, re.M)
    assert pythonpath, "Dockerfile does not set PYTHONPATH"
    include_in_image = pythonpath.group(1).split(":")[0].split("$")[0]
    for name in AIRFLOW_SERVICES:
        targets = volume_targets(services[name])
        for directory, target in (
            ("dags", "/opt/airflow/dags"),
            ("plugins", "/opt/airflow/plugins"),
            ("include", include_in_image),
        ):
            assert targets.get(target) == f"./{directory}:ro", f"{name}: ./{directory} not mounted read-only at {target}"
        # Tasks read the host tree at the config's app_root; the host side is configurable.
        source = targets.get(OpsConfig().app_root, "")
        assert source.startswith("${GRAVITYPM_APP_ROOT:-/opt/gravitypm/production}"), (
            f"{name}: production root not mounted at {OpsConfig().app_root}"
        )
        assert "/opt/airflow/logs" in targets, f"{name}: no logs volume"


def test_demo_services_only_in_demo_profile(services):
    for name, service in services.items():
        profiles = service.get("profiles")
        if name in DEMO_SERVICES:
            assert profiles == ["demo"], f"{name}: profiles {profiles}"
        else:
            assert not profiles, f"{name} is not a demo service but has profiles {profiles}"
            # A default service must not need a service that only the demo profile starts.
            depends = service.get("depends_on", {})
            assert not DEMO_SERVICES & set(depends), f"{name} depends on a demo service"


def test_demo_mongo_is_a_single_node_replica_set(services, env):
    mongo = services["mongo"]
    assert mongo["image"].startswith("mongo:7")
    command = mongo["command"]
    command = command.split() if isinstance(command, str) else command
    assert command[command.index("--replSet") + 1] == "rs0"
    assert "--bind_ip_all" in command
    check = " ".join(mongo["healthcheck"]["test"])
    assert "mongosh" in check and "rs.initiate(" in check and "'rs0'" in check
    # The member host must be resolvable from the other containers: the service name.
    assert "host: 'mongo:27017'" in check
    from airflow.sdk import Connection

    for conn_id in (names.MONGO_CONN_ID, names.MONGO_SCRATCH_CONN_ID):
        conn = Connection.from_json(env[f"AIRFLOW_CONN_{conn_id.upper()}"], conn_id=conn_id)
        assert conn.host == "mongo" and conn.port == 27017, conn_id
        assert conn.extra_dejson.get("replicaSet") == "rs0", conn_id


# --- deploy/airflow.env.example ---------------------------------------------------------


def test_env_example_connections_are_the_suites_connection_ids(env):
    from airflow.sdk import Connection

    declared = {key.removeprefix("AIRFLOW_CONN_") for key in env if key.startswith("AIRFLOW_CONN_")}
    assert declared == {conn_id.upper() for conn_id in connection_ids()}
    for conn_id in connection_ids():
        raw = env[f"AIRFLOW_CONN_{conn_id.upper()}"]
        assert isinstance(json.loads(raw), dict), conn_id
        conn = Connection.from_json(raw, conn_id=conn_id)
        assert conn.conn_type == expected_conn_type(conn_id), conn_id


def test_env_example_values_survive_compose(env):
    for key, value in env.items():
        assert "$" not in value, f"{key}: compose would interpolate '$'"
        assert " #" not in value, f"{key}: compose would cut the value at ' #'"
        assert value[:1] not in ("'", '"'), f"{key}: leave values unquoted"


def test_env_example_aws_points_at_demo_minio_with_its_credentials(env, services):
    from airflow.sdk import Connection

    conn = Connection.from_json(env[f"AIRFLOW_CONN_{names.AWS_CONN_ID.upper()}"], conn_id=names.AWS_CONN_ID)
    assert conn.extra_dejson["endpoint_url"] == "http://minio:9000"
    assert "minio" in services
    assert conn.login == env["MINIO_ROOT_USER"]
    assert conn.password == env["MINIO_ROOT_PASSWORD"]
    for name in ("minio", "minio-init"):
        assert ENV_FILE in env_files(services[name]), f"{name} does not read the MinIO credentials"


def test_env_example_slack_is_a_placeholder_webhook(env):
    from airflow.sdk import Connection

    conn = Connection.from_json(env[f"AIRFLOW_CONN_{names.SLACK_CONN_ID.upper()}"], conn_id=names.SLACK_CONN_ID)
    assert conn.password and "change-me" in conn.password


def test_env_example_variable_is_valid_config(env):
    config = parse_config_json(env[f"AIRFLOW_VAR_{names.CONFIG_VARIABLE.upper()}"])
    assert isinstance(json.loads(env[f"AIRFLOW_VAR_{names.CONFIG_VARIABLE.upper()}"]), dict)
    # The tasks read the host tree where compose mounts it.
    assert config.app_root == OpsConfig().app_root


def test_env_example_timezone(env):
    zoneinfo.ZoneInfo(env[names.TIMEZONE_ENV])


def test_vault_bucket_is_the_bucket_minio_init_creates(env, services):
    config = parse_config_json(env[f"AIRFLOW_VAR_{names.CONFIG_VARIABLE.upper()}"])
    script = command_text(services["minio-init"])
    made = re.findall(r"\bmc mb\b(?:\s+--?[\w-]+)*\s+\w+/([a-z0-9.-]+)", script)
    versioned = re.findall(r"\bmc version enable\s+\w+/([a-z0-9.-]+)", script)
    assert made == [config.vault_bucket], f"minio-init creates {made}, vault_bucket is {config.vault_bucket}"
    assert versioned == [config.vault_bucket], f"versioning enabled on {versioned}"


# --- deploy/pools.json ------------------------------------------------------------------


def test_pools_json_holds_the_suites_pools():
    pools = json.loads(POOLS_FILE.read_text())
    assert set(pools) == {names.DB_POOL, names.HOST_POOL, names.VAULT_POOL}
    for name, pool in pools.items():
        # What `airflow pools import` accepts (pool_import_helper): an object with both keys.
        assert isinstance(pool, dict) and {"slots", "description"} <= set(pool), name
        assert isinstance(pool["slots"], int) and not isinstance(pool["slots"], bool) and pool["slots"] >= 1, name
        assert isinstance(pool["description"], str) and pool["description"].strip(), name
    assert pools[names.DB_POOL]["slots"] == 1
    assert pools[names.VAULT_POOL]["slots"] == 1


# --- Dockerfile -------------------------------------------------------------------------


def test_dockerfile_airflow_version_matches_requirements(dockerfile):
    match = re.search(r"^FROM\s+apache/airflow:(\d+\.\d+\.\d+)-python(\d+\.\d+)\s*$", dockerfile, re.M)
    assert match, "Dockerfile must be FROM apache/airflow:<version>-python<version>"
    if REQUIREMENTS.exists():
        pin = re.search(r"^apache-airflow(?:\[[^\]]*\])?==([^\s;#]+)", REQUIREMENTS.read_text(), re.M)
        assert pin, "requirements.txt does not pin apache-airflow=="
        expected = pin.group(1)
    else:
        expected = importlib.metadata.version("apache-airflow")
    assert match.group(1) == expected


def test_dockerfile_installs_tools_and_requirements(dockerfile):
    # One logical line per instruction: join the backslash continuations.
    lines = dockerfile.replace("\\\n", " ").splitlines()
    install = [line for line in lines if "apt-get install" in line]
    assert len(install) == 1, "expected one apt-get install"
    for tool in ("logrotate", "pigz", "zstd", "curl"):
        assert re.search(rf"\s{tool}(\s|$)", install[0]), f"{tool} is not installed"
    assert "rm -rf /var/lib/apt/lists/*" in install[0], "apt lists are not cleaned up in the same layer"
    pip = [line for line in lines if "pip install" in line]
    assert len(pip) == 1, "expected one pip install"
    for needed in ("-r /opt/airflow/requirements.txt", "-c /opt/airflow/constraints.txt", "psycopg2-binary", "asyncpg"):
        assert needed in pip[0], f"pip install lacks {needed}"
    users = re.findall(r"^USER\s+(\S+)", dockerfile, re.M)
    assert users and users[-1] == "airflow", "the image must end as the airflow user"
    user_at_pip = [line.split()[1] for line in lines[: lines.index(pip[0])] if line.startswith("USER ")]
    assert user_at_pip and user_at_pip[-1] == "airflow", "pip must run as the airflow user"
