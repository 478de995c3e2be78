import sys

import pytest

from gravitypm_ops.config import ConfigError, parse_config
from gravitypm_ops.host.service_control import ServiceCommandError, resolve_command, run_service_action


def test_defaults_are_the_runbooks_compose_lines():
    cfg = parse_config(None)
    compose = ["docker", "compose", "-f", "/opt/gravitypm/production/docker-compose.production.yml"]
    assert resolve_command(cfg, "stop_app") == ([*compose, "stop", "app"], False)
    assert resolve_command(cfg, "start_app") == ([*compose, "start", "app"], False)
    assert resolve_command(cfg, "restart_logging") == ([*compose, "restart", "logging"], False)


def test_an_override_replaces_one_action_and_strings_are_split_without_a_shell():
    cfg = parse_config({"app_root": "/srv/gpm", "service_commands": {"stop_app": "systemctl stop 'gpm app'"}})
    assert resolve_command(cfg, "stop_app") == (["systemctl", "stop", "gpm app"], False)
    assert resolve_command(cfg, "start_app")[0][3] == "/srv/gpm/docker-compose.production.yml"


def test_a_shell_command_must_be_asked_for():
    cfg = parse_config({"service_commands": {"restart_logging": {"shell": "kill -HUP $(cat {app_root}/x.pid)"}}})
    assert resolve_command(cfg, "restart_logging") == (
        ["/bin/sh", "-c", "kill -HUP $(cat /opt/gravitypm/production/x.pid)"], True,
    )


@pytest.mark.parametrize(
    "value, message",
    [
        ({"stop_ap": ["x"]}, "unknown action"),
        ({"stop_app": []}, "argv list"),
        ({"stop_app": {"sh": "x"}}, "argv list"),
        (["stop"], "object of action"),
    ],
)
def test_bad_service_commands_name_the_key(value, message):
    with pytest.raises(ConfigError, match=f"service_commands.*{message}"):
        parse_config({"service_commands": value})


def test_unknown_action_is_refused():
    with pytest.raises(ValueError, match="unknown service action 'reboot'"):
        resolve_command(parse_config(None), "reboot")


def _cfg(command):
    return parse_config({"service_commands": {"restart_logging": command}})


def test_success_returns_the_output_tail():
    result = run_service_action(_cfg([sys.executable, "-c", "print('reopened')"]), "restart_logging")
    assert result["returncode"] == 0 and result["stdout_tail"] == "reopened"


def test_failure_is_an_error_carrying_stderr_without_secrets():
    failing = [sys.executable, "-c",
               "import sys; sys.stderr.write('cannot reach mongodb://ops:s3cret-pw@db:27017'); sys.exit(3)"]
    with pytest.raises(ServiceCommandError, match=r"exited with 3: cannot reach mongodb://\*\*\*@db") as err:
        run_service_action(_cfg(failing), "restart_logging")
    assert "s3cret-pw" not in str(err.value)


def test_a_missing_program_and_a_hang_are_clear_errors():
    with pytest.raises(ServiceCommandError, match="cannot run 'no-such-compose'"):
        run_service_action(_cfg(["no-such-compose", "restart"]), "restart_logging")
    with pytest.raises(ServiceCommandError, match="did not finish within 1 s"):
        run_service_action(_cfg([sys.executable, "-c", "import time; time.sleep(30)"]), "restart_logging", timeout=1)
