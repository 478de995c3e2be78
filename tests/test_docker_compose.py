"""Static checks of the deployment files: docker-compose.yaml (the control plane),
docker-compose.single-box.yaml (the one-box override), deploy/host-agent/ (the Edge worker on the
production host: compose file, systemd unit, env file), Dockerfile, deploy/.

There is no Docker engine where these run, so the compose stacks are validated by parsing:
their structure, and their agreement with the library (connection ids, pools, queue, config keys)
and with each other. The one-box stack is the override merged onto the base by compose's rules.
"""

from __future__ import annotations

import base64
import importlib.metadata
import json
import re
import shlex
import zoneinfo
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from gravitypm_ops import names
from gravitypm_ops.config import OpsConfig, parse_config_json

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yaml"
SINGLE_BOX_FILE = ROOT / "docker-compose.single-box.yaml"
AGENT_DIR = ROOT / "deploy" / "host-agent"
AGENT_COMPOSE_FILE = AGENT_DIR / "compose.yaml"
AGENT_ENV_EXAMPLE = AGENT_DIR / "host-agent.env.example"
AGENT_UNIT = AGENT_DIR / "gravitypm-host-agent.service"
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
EDGE_EXECUTOR = "airflow.providers.edge3.executors.EdgeExecutor"
SPLIT_EXECUTORS = f"LocalExecutor,{EDGE_EXECUTOR}"
APP_ROOT_SOURCE = "${GRAVITYPM_APP_ROOT:-/opt/gravitypm/production}"
# What only the control plane may hold: the host agent gets connections and variables through the
# API server's execution API while a task runs, and has no metadata DB.
CONTROL_PLANE_ONLY = re.compile(r"AIRFLOW__DATABASE__|AIRFLOW__CORE__FERNET_KEY|AIRFLOW_CONN_|AIRFLOW_VAR_|POSTGRES")


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


def load_yaml(path: Path) -> dict:
    return yaml.load(path.read_text(), Loader=StrictLoader)


def merge_service(base: dict, override: dict) -> dict:
    """One service of `docker compose -f base -f override`, by the compose spec's merge rules:
    mappings merge key by key, `command` / `entrypoint` / `healthcheck.test` are replaced, `volumes`
    are unique by container path (the override's wins), other sequences are appended."""
    merged = dict(base)
    for key, value in override.items():
        if key == "volumes":
            by_target = {next(iter(volume_targets({"volumes": [v]}))): v for v in [*base.get(key, []), *value]}
            merged[key] = list(by_target.values())
        elif key in ("command", "entrypoint") or not isinstance(value, (dict, list)):
            merged[key] = value
        elif isinstance(value, dict):
            inner = dict(base.get(key, {}))
            inner.update(value)  # environment by key; healthcheck.test replaced with the rest
            merged[key] = inner
        else:
            merged[key] = [*base.get(key, []), *value]
    return merged


def duration(text: str) -> timedelta:
    """A compose duration ("6h", "1h30m", "90s") or a systemd time span ("6h", "6h 30min")."""
    units = {"h": 3600, "m": 60, "min": 60, "s": 1}
    parts = re.findall(r"(\d+)\s*(h|min|m|s)", text)
    assert parts and re.fullmatch(r"(\s*\d+\s*(h|min|m|s))+\s*", text), f"unparsable duration {text!r}"
    return timedelta(seconds=sum(int(n) * units[u] for n, u in parts))


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """A systemd unit file: section -> key -> values (keys like Environment repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        assert not line.endswith("\\"), f"line {number}: keep each setting on one line"
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        assert current is not None, f"line {number}: setting outside a section"
        key, sep, value = line.partition("=")
        assert sep, f"line {number}: expected Key=Value, got {raw!r}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def unit_environment(unit: dict) -> dict[str, str]:
    env = {}
    for item in unit["Service"].get("Environment", []):
        key, _, value = item.partition("=")
        assert key not in env, f"Environment={key} set twice"
        env[key] = value
    return env


def executors(environment: dict) -> list[str]:
    return [name.strip() for name in str(environment["AIRFLOW__CORE__EXECUTOR"]).split(",")]


@pytest.fixture(scope="module")
def compose() -> dict:
    return load_yaml(COMPOSE_FILE)


@pytest.fixture(scope="module")
def services(compose) -> dict[str, dict]:
    return compose["services"]


@pytest.fixture(scope="module")
def single_box_override() -> dict:
    return load_yaml(SINGLE_BOX_FILE)


@pytest.fixture(scope="module")
def single_box(services, single_box_override) -> dict[str, dict]:
    """The services of `docker compose -f docker-compose.yaml -f docker-compose.single-box.yaml`."""
    overrides = single_box_override["services"]
    return {name: merge_service(service, overrides.get(name, {})) for name, service in services.items()}


@pytest.fixture(scope="module", params=["control-plane", "single-box"])
def topology(request, services, single_box) -> dict[str, dict]:
    """Both stacks: what holds for every Airflow deployment is checked on each."""
    return services if request.param == "control-plane" else single_box


@pytest.fixture(scope="module")
def agent_compose() -> dict:
    return load_yaml(AGENT_COMPOSE_FILE)


@pytest.fixture(scope="module")
def agent(agent_compose) -> dict:
    assert set(agent_compose["services"]) == {"host-agent"}, "the host agent is one service"
    return agent_compose["services"]["host-agent"]


@pytest.fixture(scope="module")
def agent_env() -> dict[str, str]:
    return parse_env_file(AGENT_ENV_EXAMPLE.read_text())


@pytest.fixture(scope="module")
def unit() -> dict:
    return parse_unit(AGENT_UNIT.read_text())


@pytest.fixture(scope="module")
def worker_args(agent) -> dict[str, str]:
    """`airflow edge worker` options of the compose service, long names."""
    argv = agent["command"]
    assert isinstance(argv, list), "list form: compose would split a string command inside ${VAR:?message}"
    argv = [str(arg) for arg in argv]
    assert argv[:2] == ["edge", "worker"], f"the host agent runs {argv[:2]}, not `edge worker`"
    options = argv[2:]
    assert len(options) % 2 == 0 and all(o.startswith("--") for o in options[::2]), f"use --long value pairs: {options}"
    return dict(zip(options[::2], options[1::2], strict=True))


@pytest.fixture(scope="module")
def env() -> dict[str, str]:
    return parse_env_file(ENV_EXAMPLE.read_text())


@pytest.fixture(scope="module")
def dockerfile() -> str:
    return DOCKERFILE.read_text()


# --- compose structure ----------------------------------------------------------------


def test_required_services_exist(topology):
    missing = REQUIRED_SERVICES - set(topology)
    assert not missing, f"missing services: {sorted(missing)}"
    assert "airflow-webserver" not in topology, "Airflow 3 has an api-server, not a webserver"


def test_long_running_services_have_healthchecks(topology):
    for name, service in topology.items():
        if name in ONE_SHOT:
            # A one-shot job must not be restarted once it has exited successfully.
            assert service.get("restart", "no") in ("no", "on-failure"), name
            continue
        check = service.get("healthcheck") or {}
        assert not check.get("disable"), f"{name}: healthcheck disabled"
        test = check.get("test")
        assert test and test not in (["NONE"], "NONE"), f"{name} has no healthcheck"
        assert service.get("restart") in ("always", "unless-stopped"), f"{name} is not restarted"


def test_airflow_components_run_airflow3_commands_with_their_healthchecks(topology):
    for name, command in AIRFLOW_LONG_RUNNING.items():
        assert command_text(topology[name]) == command, name
    expected_checks = {
        "airflow-apiserver": "http://localhost:8080/api/v2/version",
        "airflow-scheduler": "http://localhost:8974/health",
        "airflow-dag-processor": "--job-type DagProcessorJob",
        "airflow-triggerer": "--job-type TriggererJob",
    }
    for name, needle in expected_checks.items():
        test = topology[name]["healthcheck"]["test"]
        assert needle in " ".join(test), f"{name}: healthcheck {test!r} lacks {needle!r}"
    # `$$` is compose's escape: the container's own $HOSTNAME, not one interpolated by compose.
    for name in ("airflow-dag-processor", "airflow-triggerer"):
        assert '--hostname "$${HOSTNAME}"' in " ".join(topology[name]["healthcheck"]["test"]), name
    # The scheduler only serves :8974/health when told to.
    scheduler_env = topology["airflow-scheduler"]["environment"]
    assert str(scheduler_env.get("AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK")).lower() == "true"
    # The API server is healthy only if the edge worker API answers exactly when it is enabled
    # (off, /edge_worker/v1/health is a 404 and would keep the API server unhealthy for ever).
    apiserver = topology["airflow-apiserver"]
    edge_api = str(apiserver["environment"].get("AIRFLOW__EDGE__API_ENABLED", "False")).lower() == "true"
    assert ("http://localhost:8080/edge_worker/v1/health" in " ".join(apiserver["healthcheck"]["test"])) == edge_api


def test_airflow_services_wait_for_init_and_postgres(topology):
    for name in AIRFLOW_LONG_RUNNING:
        depends = topology[name].get("depends_on", {})
        assert isinstance(depends, dict), f"{name}: depends_on needs conditions"
        assert depends.get("airflow-init", {}).get("condition") == "service_completed_successfully", name
        assert depends.get("postgres", {}).get("condition") == "service_healthy", name
    init_depends = topology["airflow-init"].get("depends_on", {})
    assert init_depends.get("postgres", {}).get("condition") == "service_healthy"


def test_airflow_init_migrates_and_imports_the_pools_the_image_ships(services, dockerfile):
    script = command_text(services["airflow-init"])
    assert "airflow db migrate" in script
    match = re.search(r"airflow pools import (\S+)", script)
    assert match, "airflow-init does not import pools"
    assert re.search(rf"^COPY\b.*\bdeploy/pools\.json\s+{re.escape(match.group(1))}\s*$", dockerfile, re.MULTILINE), (
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
        result = subprocess.run([shutil.which(shell) or shell, "-n", "-c", script], check=False, capture_output=True, text=True)
        assert result.returncode == 0, f"{name}: {result.stderr}"


def test_airflow_common_environment(topology):
    for name in AIRFLOW_SERVICES:
        environment = topology[name]["environment"]
        assert executors(environment)[0] == "LocalExecutor", f"{name}: the default executor runs the S3/DB tasks"
        assert str(environment["AIRFLOW__CORE__LOAD_EXAMPLES"]).lower() == "false", name
        sql = environment["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
        assert sql.startswith("postgresql+psycopg2://") and "@postgres:" in sql, f"{name}: {sql}"
        # The execution API is served by the api-server service, on its container port.
        url = environment["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"]
        match = re.fullmatch(r"http://([a-z0-9-]+):(\d+)/execution/", url)
        assert match, f"{name}: {url}"
        host, port = match.groups()
        assert command_text(topology.get(host, {})) == "api-server", f"{name}: {host} is not the api-server"
        published = [str(p).rsplit(":", 1)[-1] for p in topology[host].get("ports", [])]
        assert port in published, f"{name}: the api-server listens on {published}, not {port}"
        # These come from the shared env file; `environment` would override it per service.
        for secret in ("AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__CORE__FERNET_KEY"):
            assert secret not in environment, f"{name}: {secret} must come from {ENV_FILE}"
        assert ENV_FILE in env_files(topology[name]), f"{name} does not read {ENV_FILE}"


def test_control_plane_hands_host_tasks_to_the_edge_executor_and_serves_its_api(services):
    for name in AIRFLOW_SERVICES:
        environment = services[name]["environment"]
        assert environment["AIRFLOW__CORE__EXECUTOR"] == SPLIT_EXECUTORS, name
        # Host tasks name an executor the deployment has (else every DAG with one is an import error).
        host_executor = environment[names.HOST_EXECUTOR_ENV]
        assert host_executor == EDGE_EXECUTOR and host_executor in executors(environment), name
        assert str(environment["AIRFLOW__EDGE__API_ENABLED"]).lower() == "true", name
    # The edge API is the API server's: published, so agents on other hosts reach it.
    assert services["airflow-apiserver"].get("ports"), "the API server (and its edge API) is not published"


def test_single_box_runs_everything_on_the_local_executor(single_box, single_box_override):
    # Only Airflow services are adjusted, and each of them: a half-converted stack would name
    # executors some components lack.
    assert set(single_box_override["services"]) == AIRFLOW_SERVICES
    for name in AIRFLOW_SERVICES:
        environment = single_box[name]["environment"]
        assert environment["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor", name
        # Empty: host_placement() names no executor, so no task asks for the (absent) Edge executor.
        assert environment[names.HOST_EXECUTOR_ENV] == "", name
        assert str(environment["AIRFLOW__EDGE__API_ENABLED"]).lower() == "false", name


def test_airflow_secrets_in_env_example(env):
    from cryptography.fernet import Fernet

    # HS512 wants a 64-byte key: shorter ones get InsecureKeyLengthWarning on every token.
    assert len(env["AIRFLOW__API_AUTH__JWT_SECRET"].encode()) >= 64
    fernet_key = env["AIRFLOW__CORE__FERNET_KEY"]
    Fernet(fernet_key.encode())  # raises unless a valid key
    # Placeholders only: the example must never carry a real secret.
    assert "change-me" in env["AIRFLOW__API_AUTH__JWT_SECRET"]
    assert b"change-me" in base64.urlsafe_b64decode(fernet_key)


def code_in_image(dockerfile: str) -> dict[str, str]:
    """Repo directory -> where the image has it (dags, plugins, and include on the PYTHONPATH)."""
    pythonpath = re.search(r"^ENV PYTHONPATH=(\S+)", dockerfile, re.MULTILINE)
    assert pythonpath, "Dockerfile does not set PYTHONPATH"
    include_in_image = pythonpath.group(1).split(":")[0].split("$")[0]
    wanted = {"dags": "/opt/airflow/dags", "plugins": "/opt/airflow/plugins", "include": include_in_image}
    for directory, target in wanted.items():
        assert re.search(rf"^COPY\b.*\s{directory}/?\s+{re.escape(target)}/?\s*$", dockerfile, re.MULTILINE), (
            f"the Dockerfile does not copy {directory}/ to {target}"
        )
    return wanted


def test_single_box_mounts_the_checkout_and_the_production_root(single_box, dockerfile):
    for name in AIRFLOW_SERVICES:
        targets = volume_targets(single_box[name])
        for directory, target in code_in_image(dockerfile).items():
            assert targets.get(target) == f"./{directory}:ro", f"{name}: ./{directory} not mounted read-only at {target}"
        # Tasks read the host tree at the config's app_root; the host side is configurable.
        source = targets.get(OpsConfig().app_root, "")
        assert source.startswith(APP_ROOT_SOURCE), f"{name}: production root not mounted at {OpsConfig().app_root}"
        assert "/opt/airflow/logs" in targets, f"{name}: no logs volume"


def test_control_plane_runs_the_image_code_and_mounts_nothing_of_the_host(services, dockerfile):
    image_code = set(code_in_image(dockerfile).values())
    for name, service in services.items():
        targets = volume_targets(service)
        sources = " ".join(targets.values())
        assert "GRAVITYPM_APP_ROOT" not in sources and "/opt/gravitypm" not in sources, f"{name} mounts the host tree"
        assert OpsConfig().app_root not in targets, f"{name} mounts something at the production root"
        if name in AIRFLOW_SERVICES:
            # The agent runs the image's code: a checkout mounted here could differ from it.
            assert not image_code & set(targets), f"{name} mounts code over the image's: {image_code & set(targets)}"
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
    match = re.search(r"^FROM\s+apache/airflow:(\d+\.\d+\.\d+)-python(\d+\.\d+)\s*$", dockerfile, re.MULTILINE)
    assert match, "Dockerfile must be FROM apache/airflow:<version>-python<version>"
    if REQUIREMENTS.exists():
        pin = re.search(r"^apache-airflow(?:\[[^\]]*\])?==([^\s;#]+)", REQUIREMENTS.read_text(), re.MULTILINE)
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
    users = re.findall(r"^USER\s+(\S+)", dockerfile, re.MULTILINE)
    assert users and users[-1] == "airflow", "the image must end as the airflow user"
    user_at_pip = [line.split()[1] for line in lines[: lines.index(pip[0])] if line.startswith("USER ")]
    assert user_at_pip and user_at_pip[-1] == "airflow", "pip must run as the airflow user"


# --- deploy/host-agent/ -----------------------------------------------------------------


def test_host_agent_is_an_edge_worker_on_the_host_queue(agent, worker_args):
    assert worker_args["--queues"] == names.HOST_QUEUE
    # Named after the host, and the task instances report the same name (their hostname).
    assert re.fullmatch(r"\$\{GRAVITYPM_HOST_NAME:\?[^}]+\}", worker_args["--edge-hostname"])
    assert agent["hostname"] == worker_args["--edge-hostname"]
    # More slots than the host pool: short host tasks must not queue behind the pooled long ones.
    pools = json.loads(POOLS_FILE.read_text())
    assert int(worker_args["--concurrency"]) > pools[names.HOST_POOL]["slots"]


def test_host_agent_runs_the_control_planes_image(agent, services, dockerfile):
    image = services["airflow-apiserver"]["image"]
    assert image.startswith("${GRAVITYPM_OPS_IMAGE:-") and agent["image"] == image
    for name in AIRFLOW_SERVICES:
        assert services[name]["image"] == image, name
    # Built from the same Dockerfile when it cannot be pulled: the DAG files and the library come with it.
    context = (AGENT_DIR / agent["build"]["context"]).resolve()
    assert context == ROOT and (context / agent["build"]["dockerfile"]).read_text() == dockerfile
    code_in_image(dockerfile)


def test_host_agent_holds_only_the_api_url_the_jwt_secret_and_the_production_tree(agent, agent_env, services):
    environment = agent["environment"]
    # Same executors and host executor as the control plane: the worker re-parses the DAG file.
    control_plane = services["airflow-scheduler"]["environment"]
    for key in ("AIRFLOW__CORE__EXECUTOR", names.HOST_EXECUTOR_ENV):
        assert environment[key] == control_plane[key], key
    assert str(environment["AIRFLOW__CORE__LOAD_EXAMPLES"]).lower() == "false"
    # No DB: the image entrypoint must not wait for one.
    assert str(environment["CONNECTION_CHECK_MAX_COUNT"]) == "0"
    for key in [*environment, *agent_env]:
        assert not CONTROL_PLANE_ONLY.match(key), f"the host agent must not hold {key}"
    assert set(agent_env) == {"AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__EDGE__API_URL",
                              "AIRFLOW__CORE__EXECUTION_API_SERVER_URL"}
    assert env_files(agent) == ["host-agent.env"]
    assert not agent.get("depends_on") and not agent.get("ports"), "the agent only calls out"
    targets = volume_targets(agent)
    assert targets.pop(OpsConfig().app_root, "").startswith(APP_ROOT_SOURCE), "production root not mounted"
    assert set(targets) == {"/opt/airflow/logs"}, f"unexpected mounts {sorted(targets)}"


def test_host_agent_env_example_matches_the_control_plane(agent_env, env):
    # The placeholders are equal, so the two examples work together as they are.
    assert agent_env["AIRFLOW__API_AUTH__JWT_SECRET"] == env["AIRFLOW__API_AUTH__JWT_SECRET"]
    api_url = agent_env["AIRFLOW__EDGE__API_URL"]
    match = re.fullmatch(r"(https?://[^/\s]+)/edge_worker/v1/rpcapi", api_url)
    assert match, f"AIRFLOW__EDGE__API_URL {api_url!r} is not <API server>/edge_worker/v1/rpcapi"
    assert agent_env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == f"{match.group(1)}/execution/"
    for key, value in agent_env.items():
        # Read by docker compose and by systemd's EnvironmentFile alike.
        assert "$" not in value and " #" not in value and value[:1] not in ("'", '"'), key


def test_host_agent_example_url_reaches_a_control_plane_on_the_same_docker_host(agent, agent_env, services):
    host = re.match(r"https?://([^:/]+)", agent_env["AIRFLOW__EDGE__API_URL"]).group(1)
    assert host == "host.docker.internal"
    assert "host.docker.internal:host-gateway" in agent.get("extra_hosts", [])
    port = re.match(r"https?://[^:/]+:(\d+)", agent_env["AIRFLOW__EDGE__API_URL"]).group(1)
    published = [str(p).rsplit(":", 1)[0] for p in services["airflow-apiserver"]["ports"]]
    assert any(port in p for p in published), f"the control plane publishes {published}, not {port}"


def test_host_agent_drains_running_host_tasks_on_stop(agent, dagbag):
    check = agent["healthcheck"]
    assert check["test"] == ["CMD", "airflow", "edge", "status"]
    assert agent["restart"] in ("always", "unless-stopped")
    # SIGINT = drain (SIGTERM kills the running tasks), delivered to the worker alone.
    assert agent["stop_signal"] == "SIGINT"
    assert str(agent["environment"]["DUMB_INIT_SETSID"]) == "0"
    longest = max(task.execution_timeout for dag in dagbag.dags.values() for task in dag.tasks
                  if task.queue == names.HOST_QUEUE and task.execution_timeout)
    assert duration(agent["stop_grace_period"]) >= longest, f"a host task may run {longest}"


def test_systemd_unit_runs_the_same_worker(unit, worker_args, agent, services):
    service = unit["Service"]
    (exec_start,) = service["ExecStart"]
    argv = shlex.split(exec_start)
    assert argv[0].startswith("/") and argv[0].endswith("/airflow"), "ExecStart needs an absolute path"
    assert argv[1:3] == ["edge", "worker"]
    options = dict(zip(argv[3::2], argv[4::2], strict=True))
    assert options["--queues"] == worker_args["--queues"]
    assert options["--concurrency"] == worker_args["--concurrency"]
    assert options["--edge-hostname"] == "%H"
    environment = unit_environment(unit)
    control_plane = services["airflow-scheduler"]["environment"]
    for key in ("AIRFLOW__CORE__EXECUTOR", names.HOST_EXECUTOR_ENV):
        assert environment[key] == control_plane[key], key
    for key in environment:
        assert not CONTROL_PLANE_ONLY.match(key), f"the unit must not set {key}"
    # Its own AIRFLOW_HOME, the library importable, the DAG files where it says.
    assert environment["AIRFLOW_HOME"] == "/var/lib/" + service["StateDirectory"][0]
    install = environment["AIRFLOW__CORE__DAGS_FOLDER"].removesuffix("/dags")
    assert environment["PYTHONPATH"] == f"{install}/include"
    assert argv[0].startswith(install + "/")
    (env_file,) = service["EnvironmentFile"]
    assert env_file.endswith("/" + AGENT_ENV_EXAMPLE.name.removesuffix(".example"))
    # Drain on stop, as the compose service does, and for as long.
    assert service["KillSignal"] == ["SIGINT"] and service["KillMode"] == ["mixed"]
    assert duration(service["TimeoutStopSec"][0]) == duration(agent["stop_grace_period"])
    assert service["Restart"] == ["always"]
    assert "network-online.target" in unit["Unit"]["After"][0]
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]


def test_systemd_accepts_the_unit(tmp_path, unit):
    """systemd's own parser: an unknown or misspelt key, or a bad value, is a warning on stderr that
    systemd then ignores (a misspelt KillSignal would kill the running restores on every stop)."""
    import subprocess
    import sys

    from tests.processes import find_or_install

    analyze = find_or_install("systemd-analyze", "systemd", "systemd-analyze (to check the unit)")
    # verify also wants ExecStart's program to exist: point it at one that does.
    program = shlex.split(unit["Service"]["ExecStart"][0])[0]
    copy = tmp_path / AGENT_UNIT.name
    copy.write_text(AGENT_UNIT.read_text().replace(f"ExecStart={program} ", f"ExecStart={sys.executable} "))
    result = subprocess.run([analyze, "verify", str(copy)], check=False, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr
