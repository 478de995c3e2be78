"""`fs_excludes` globs compiled into one predicate over archive paths."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence

log = logging.getLogger(__name__)


def _glob_segment(segment: str) -> str:
    """One path segment of a glob as a regex: * and ? never cross "/"; [...] as in fnmatch."""
    out, i = [], 0
    while i < len(segment):
        c = segment[i]
        i += 1
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[" and (close := segment.find("]", i + 1 if segment[i : i + 1] in ("!", "]") else i)) != -1:
            body = segment[i:close]
            body = "^" + body[1:] if body.startswith("!") else body
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = close + 1
        else:
            out.append(re.escape(c))
    return "".join(out)


def compile_excludes(patterns: Sequence[str]) -> Callable[[str], bool]:
    """A predicate telling whether an archive path is excluded.

    Rules: a pattern is matched against the whole archive path (relative, "/"-separated, as it
    appears in the index), anchored at the archive top — "*.tmp" matches "a.tmp" but not
    "x/a.tmp"; write "**/*.tmp" for any depth. A leading "/" or "./" is ignored. `*` matches
    any run of characters except "/", `?` one such character, `[abc]` / `[!abc]` a class; a
    `**` segment matches zero or more whole segments, so "logs/**" matches "logs" itself and
    everything below it, and "**/.cache/**" any ".cache" directory with its content.
    An excluded directory is not descended into: everything below it is left out too.
    """
    regexes = []
    for pattern in patterns:
        if not isinstance(pattern, str) or not pattern.strip("/."):
            raise ValueError(f"exclude pattern {pattern!r} is empty or not a string")
        parts = [p for p in re.sub(r"^(\./|/)+", "", pattern).split("/") if p not in ("", ".")]
        regexes.append("".join("(?:[^/]+/)*" if p == "**" else _glob_segment(p) + "/" for p in parts))
    if not regexes:
        return lambda path: False
    matcher = re.compile("|".join(f"(?:{r})" for r in regexes), re.DOTALL)
    return lambda path: matcher.fullmatch(path + "/") is not None
