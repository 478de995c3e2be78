"""Service control drives the dev production host as a real process (the runbook's compose lines)."""

import json
import urllib.error
import urllib.request

import pytest

from gravitypm_ops.config import parse_config
from gravitypm_ops.host.service_control import ServiceCommandError, run_service_action


def _health(stack) -> int:
    try:
        with urllib.request.urlopen(stack.url("host") + "/health", timeout=5) as reply:
            return reply.status
    except urllib.error.HTTPError as err:
        return err.code


def test_stop_and_start_app_flip_the_health_endpoint(stack):
    cfg = parse_config(stack.ops_config())
    try:
        run_service_action(cfg, "stop_app")
        assert _health(stack) == 503
    finally:
        run_service_action(cfg, "start_app")
    assert _health(stack) == 200


def test_restart_logging_makes_the_writer_reopen(stack):
    result = run_service_action(parse_config(stack.ops_config()), "restart_logging")
    first = json.loads(result["stdout_tail"])["logging_restarts"]
    second = json.loads(run_service_action(parse_config(stack.ops_config()), "restart_logging")["stdout_tail"])
    assert second["logging_restarts"] == first + 1


def test_an_unreachable_host_fails_with_the_commands_stderr(stack):
    commands = stack.service_commands()
    commands["stop_app"] = [a.replace(stack.url("host"), "http://127.0.0.1:9") for a in commands["stop_app"]]
    cfg = parse_config({**stack.ops_config(), "service_commands": commands})
    with pytest.raises(ServiceCommandError, match="stop_app: .* exited with 1: host_ctl: stop app failed"):
        run_service_action(cfg, "stop_app")
    assert _health(stack) == 200
