"""Signatures that make "verified" mean "verified by this suite", not "written into the bucket".

Whoever can write the vault bucket could otherwise add a manifest or a `verifications/*.json`
saying "passed", and the crafted backup would become `latest`, the restore form's default.
With the `gravitypm_signing_key` connection set, every manifest, verification record and
status.json the suite writes carries an HMAC-SHA256 over its canonical JSON, and the vault
reads back only documents whose signature checks with a key Airflow holds; the others are
left out and reported (status.json `signing.rejected`, the console, `/metrics`).

- The connection's password holds one key per line (at least 32 characters each, e.g.
  `openssl rand -hex 32`). The first line signs; every line verifies, so a key is rotated by
  putting the new one first and dropping the old one once its backups are gone.
- `key_id` (recorded in each signature) is an HMAC of a fixed label under the key: it names
  the key without revealing anything about it.
- Without the connection nothing is signed or checked (a new install still works); status.json
  says `signing: {"enabled": false}` and the morning checklist's vault hygiene warns.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging

from gravitypm_ops.names import SIGNING_KEY_CONN_ID

log = logging.getLogger(__name__)

ALGORITHM = "HMAC-SHA256"
SIGNATURE_FIELD = "signature"
# Fields added to a document after it was stored (the vault attaches the newest verification
# record to each manifest it hands out): never part of what is signed.
UNSIGNED_FIELDS = (SIGNATURE_FIELD, "verification")
MIN_KEY_LENGTH = 32
# deploy/airflow.env.example's key starts with this: it signs, but vault hygiene warns (it is public).
PLACEHOLDER_PREFIX = "change-me"
UNSIGNED = "not signed"


class SigningKeyError(ValueError):
    """The signing connection holds something that is not a usable key (the message never quotes it)."""


def canonical(doc: dict) -> bytes:
    """The bytes signed: sorted keys, no whitespace, non-JSON values as str (as the vault stores them),
    so a document and its JSON round trip give the same bytes."""
    body = {k: v for k, v in doc.items() if k not in UNSIGNED_FIELDS}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=False).encode()


class Signer:
    """Signs with the first key, verifies with any of them."""

    def __init__(self, secrets: list[str]):
        if not secrets:
            raise SigningKeyError(f"connection {SIGNING_KEY_CONN_ID!r}: its password holds no key")
        for number, secret in enumerate(secrets, 1):
            if len(secret) < MIN_KEY_LENGTH:
                raise SigningKeyError(f"connection {SIGNING_KEY_CONN_ID!r}: key on line {number} is shorter than "
                                      f"{MIN_KEY_LENGTH} characters (make one with `openssl rand -hex 32`)")
        self._keys = {self._key_id(s.encode()): s.encode() for s in secrets}
        self.key_id = next(iter(self._keys))
        self.placeholder = secrets[0].startswith(PLACEHOLDER_PREFIX)

    def __repr__(self) -> str:  # never the keys
        return f"Signer(key_id={self.key_id!r}, keys={len(self._keys)})"

    @staticmethod
    def _key_id(secret: bytes) -> str:
        return hmac.new(secret, b"gravitypm_ops signing key id", hashlib.sha256).hexdigest()[:16]

    @classmethod
    def from_password(cls, password: str | None) -> Signer:
        return cls([line.strip() for line in (password or "").splitlines() if line.strip()])

    def sign(self, doc: dict) -> dict:
        """`doc` with a `signature` of its canonical JSON under the first key (any old signature replaced)."""
        value = hmac.new(self._keys[self.key_id], canonical(doc), hashlib.sha256).hexdigest()
        body = {k: v for k, v in doc.items() if k != SIGNATURE_FIELD}
        return {**body, SIGNATURE_FIELD: {"alg": ALGORITHM, "key_id": self.key_id, "hmac": value}}

    def problem(self, doc: dict) -> str:
        """"" when `doc` carries a valid signature under one of the keys, else why not."""
        signature = doc.get(SIGNATURE_FIELD)
        if signature is None:
            return UNSIGNED
        if not isinstance(signature, dict) or signature.get("alg") != ALGORITHM:
            return "signature is not " + ALGORITHM
        key = self._keys.get(str(signature.get("key_id")))
        if key is None:
            return f"signed with key {str(signature.get('key_id'))[:20]!r}, which Airflow does not hold"
        expected = hmac.new(key, canonical(doc), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, str(signature.get("hmac"))):
            return "bad signature (altered after signing, or forged)"
        return ""


def signer_from_connection(conn_id: str = SIGNING_KEY_CONN_ID) -> Signer | None:
    """The Signer of the signing connection, None when the deployment has no such connection."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        password = BaseHook.get_connection(conn_id).password
    except AirflowNotFoundException:
        log.info("no %s connection: manifests and verification records are neither signed nor checked", conn_id)
        return None
    return Signer.from_password(password)
