"""Scrub credentials out of free text before it reaches a log, XCom, manifest or Slack."""

from __future__ import annotations

import re

_URI_CREDENTIALS = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^/\s@]+@", re.IGNORECASE)
_KEY_VALUE_SECRET = re.compile(
    r"(?P<key>\b[\w-]*(?:password|passwd|secret|token|api[_-]?key|access[_-]?key)[\w-]*\b\s*[=:]\s*)"
    r"(?P<quote>['\"]?)[^\s'\",;&]+",
    re.IGNORECASE,
)
# Slack webhook paths (/services/T…/B…/<token>) are credentials in a URL.
_SLACK_WEBHOOK_PATH = re.compile(r"/services/[A-Z0-9]+/[A-Z0-9]+/[A-Za-z0-9]+")
# age identities (private keys) decrypt every backup: never in a message, whatever quoted one.
_AGE_IDENTITY = re.compile(r"AGE-SECRET-KEY-1[0-9A-Za-z]+")


def scrub(text: str) -> str:
    """Remove credentials from free text (exception messages, URLs) before it is sent anywhere."""
    text = _URI_CREDENTIALS.sub(r"\g<scheme>***@", text)
    text = _KEY_VALUE_SECRET.sub(r"\g<key>\g<quote>***", text)
    text = _AGE_IDENTITY.sub("AGE-SECRET-KEY-1***", text)
    return _SLACK_WEBHOOK_PATH.sub("/services/***", text)
