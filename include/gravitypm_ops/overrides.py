"""Overrides on defaults, checked key by key: the one parser behind every config block.

The `gravitypm_ops` Variable and its nested blocks (`log_rotation`, `checklists`,
`service_commands`, the per-kind maps) all read the same way: an object whose keys must be
known, each value checked by that key's checker, the rest left at the default. Errors name
the key, so a typo cannot silently fall back to a default.

Also here: the small value checkers more than one block uses. A checker takes the raw JSON
value and returns the normalised one or raises ValueError saying what it must be.
This module imports nothing from the package, so any module can use it without a cycle.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

Checker = Callable[[Any], Any]


def apply_overrides(
    value: Any,
    checkers: Mapping[str, Checker],
    defaults: Mapping[str, Any] | None = None,
    *,
    path: str = "",
    noun: str = "key",
    hint: str = "value",
) -> dict[str, Any]:
    """A copy of `defaults` updated with `value`'s entries, each passed through `checkers[key]`.

    `value` must be a mapping whose keys are all in `checkers`. Errors are ValueError naming
    the key: ``<path>.<key> ...`` for a nested block, ``<noun> '<key>' ...`` without a path.
    `noun` and `hint` word the other errors ("unknown directive(s) ...", "an object of
    action -> command"). The defaults are deep-copied, so callers may mutate the result.
    """
    known = ", ".join(checkers)
    if not isinstance(value, Mapping):
        raise ValueError(f"must be an object of {noun} -> {hint}; {noun}s: {known}")
    unknown = [key for key in value if key not in checkers]
    if unknown:
        raise ValueError(f"unknown {noun}(s) {', '.join(map(repr, sorted(unknown)))}; known {noun}s: {known}")
    result = copy.deepcopy(dict(defaults or {}))
    for key, raw in value.items():
        try:
            result[key] = checkers[key](raw)
        # TypeError too: a checker tripping over an unexpected JSON type must still name the key.
        except (ValueError, TypeError) as err:
            raise ValueError(f"{f'{path}.{key}' if path else f'{noun} {key!r}'} {err}") from None
    return result


# --- checkers shared by the blocks ------------------------------------------------------


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)  # JSON true is no number


def boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("must be true or false")
    return value


def positive_number(value: Any) -> float:
    if not _is_number(value) or value <= 0:
        raise ValueError("must be a number > 0")
    return float(value)


def percent(value: Any) -> float:
    if not _is_number(value) or not 0 < value < 100:
        raise ValueError("must be a number between 0 and 100 (exclusive)")
    return float(value)


def whole_number(low: int, high: int | None = None) -> Checker:
    """Integers in [low, high] (no upper bound when high is None)."""
    bounds = f"from {low} to {high}" if high is not None else f">= {low}"

    def check(value: Any) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or value < low or (high is not None and value > high):
            raise ValueError(f"must be a whole number {bounds}")
        return value

    return check


def optional(check: Checker) -> Checker:
    """`check`, except that "" and null mean "not set" (returned as "")."""
    return lambda value: "" if value in ("", None) else check(value)


def list_of(check: Checker, what: str, *, non_empty: bool = False, example: str = "", into: type = tuple) -> Checker:
    """A JSON list, each item passed through `check`, returned as `into` (tuple for the frozen
    OpsConfig fields, list where a block's defaults are lists); errors read "must be a
    [non-empty] list of <what>[, e.g. <example>]"."""
    message = f"must be a {'non-empty ' if non_empty else ''}list of {what}" + (f", e.g. {example}" if example else "")

    def check_list(value: Any) -> Any:
        if not isinstance(value, list) or (non_empty and not value):
            raise ValueError(message)
        return into(check(item) for item in value)

    return check_list
