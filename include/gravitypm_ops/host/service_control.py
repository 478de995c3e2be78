"""Service control: stop / start the application and restart the logging service.

Restores stop the app around the data swap; log rotation restarts logging so writers reopen
their files. Each action is a command template from the `service_commands` config key
(defaults: the runbook's docker compose lines). A command is an argv list (run without a
shell), a string (split like a shell would, still run without one), or {"shell": "..."} to run
through /bin/sh when a deployment really needs pipes or variables. Placeholders: {app_root},
{compose_file}.
"""

from __future__ import annotations

import logging
import shlex
import subprocess
import time
from collections.abc import Mapping
from typing import Any

from gravitypm_ops.overrides import apply_overrides
from gravitypm_ops.redact import scrub

log = logging.getLogger(__name__)

ACTIONS = ("stop_app", "start_app", "restart_logging")
COMPOSE = ["docker", "compose", "-f", "{compose_file}"]
# Runbook "Database Recovery" steps 1 and 3, and the logrotate postrotate script.
RUNBOOK_SERVICE_COMMANDS: dict[str, Any] = {
    "stop_app": [*COMPOSE, "stop", "app"],
    "start_app": [*COMPOSE, "start", "app"],
    "restart_logging": [*COMPOSE, "restart", "logging"],
}
DEFAULT_TIMEOUT_SECONDS = 300
OUTPUT_TAIL = 2000  # characters of output kept in results and errors


class ServiceCommandError(RuntimeError):
    """A service command could not start, timed out or exited non-zero."""


def _command(value: Any) -> Any:
    if isinstance(value, str) and value.strip():
        return shlex.split(value)
    if isinstance(value, list) and value and all(isinstance(a, str) and a for a in value):
        return list(value)
    if isinstance(value, Mapping) and set(value) == {"shell"} and isinstance(value["shell"], str):
        return {"shell": value["shell"]}
    raise ValueError('must be an argv list, a command string or {"shell": "..."}')


def parse_service_commands(value: Any) -> dict:
    """Validate `service_commands` overrides: {action: command}; unknown actions are refused.

    Only the actions given are returned: resolve_command falls back to the runbook's per action.
    """
    return apply_overrides(
        value, dict.fromkeys(ACTIONS, _command), path="service_commands", noun="action", hint="command"
    )


def resolve_command(cfg, action: str) -> tuple[list[str], bool]:
    """(argv, use_shell) for `action` with placeholders filled from the config."""
    if action not in ACTIONS:
        raise ValueError(f"unknown service action {action!r}; expected one of {', '.join(ACTIONS)}")
    command = cfg.service_commands.get(action) or RUNBOOK_SERVICE_COMMANDS[action]
    values = {"app_root": cfg.app_root, "compose_file": f"{cfg.app_root}/docker-compose.production.yml"}
    if isinstance(command, Mapping):
        return ["/bin/sh", "-c", command["shell"].format(**values)], True
    return [part.format(**values) for part in command], False


def _tail(text: str) -> str:
    return scrub(text[-OUTPUT_TAIL:].strip())


def run_service_action(cfg, action: str, *, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> dict:
    """Run one action; log its output; raise ServiceCommandError with its stderr when it fails."""
    argv, shell = resolve_command(cfg, action)
    shown = scrub(" ".join(shlex.quote(a) for a in argv))
    log.info("service control %s: %s%s", action, shown, " (through a shell)" if shell else "")
    started = time.monotonic()
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except FileNotFoundError as err:
        raise ServiceCommandError(f"{action}: cannot run {argv[0]!r}: {err.strerror}") from None
    except subprocess.TimeoutExpired:
        raise ServiceCommandError(f"{action}: {shown} did not finish within {timeout:.0f} s") from None
    seconds = round(time.monotonic() - started, 3)
    for stream, text in (("stdout", done.stdout), ("stderr", done.stderr)):
        if text.strip():
            log.info("%s %s:\n%s", action, stream, _tail(text))
    if done.returncode != 0:
        raise ServiceCommandError(
            f"{action}: {shown} exited with {done.returncode}: {_tail(done.stderr) or '(no stderr)'}"
        )
    return {"action": action, "argv": shown, "returncode": 0, "seconds": seconds, "stdout_tail": _tail(done.stdout)}
