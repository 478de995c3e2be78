"""Client-side encryption of artifacts with age (age-encryption.org/v1, via pyrage).

- Recipients (public keys, `age1…`) come from config key `encryption_recipients`; every artifact of
  a kind in `encrypt_kinds` is encrypted to all of them while it streams (compress → encrypt →
  hash → upload), so the bucket alone never reveals a secret. The manifest records
  `encryption: {"format": "age", "recipients": [...]}` per artifact; its size and sha256 are the
  stored bytes' (ciphertext), so off-site copies and re-reads never need a key.
- Identities (private keys, `AGE-SECRET-KEY-1…`) come from connection `gravitypm_backup_identity`,
  one per line, and are read only when an artifact is decrypted (verification, restore, drill).
  Several lines keep old backups readable after a key rotation. No identity is ever logged or
  quoted in an error.
- pyrage's `encrypt_io` / `decrypt_io` pull from a reader and push into a writer, so each runs in a
  thread fed through a bounded queue: memory stays a few MiB whatever the artifact's size.
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass

from gravitypm_ops.formats.streaming import get_unless_stopped, put_unless_stopped
from gravitypm_ops.names import BACKUP_KINDS
from gravitypm_ops.vault.layout import VaultError

log = logging.getLogger(__name__)

# Optional, like gravitypm_signing_key; not in names.py's *_CONN_ID set, which deploy/airflow.env.example
# must declare with a value: a published placeholder identity would decrypt backups encrypted to it.
BACKUP_IDENTITY_CONN_ID = "gravitypm_backup_identity"
FORMAT = "age"
MAGIC = b"age-encryption.org/v1"  # the first bytes of every age file
RECIPIENT_PREFIX = "age1"
IDENTITY_PREFIX = "AGE-SECRET-KEY-1"
DEFAULT_KINDS = ("config", "db")
CHUNK = 1 << 20  # plaintext handed to the encrypting thread per queue item
DEPTH = 4  # queue items in flight: memory ~ DEPTH * CHUNK per artifact
CANNOT_RESTORE = "cannot be restored with the keys Airflow holds"


class UndecryptableError(VaultError):
    """An encrypted artifact that none of the identities Airflow holds opens."""


class IdentityError(ValueError):
    """The identity connection holds something that is not an age identity (never quoted)."""


def parse_recipient(value) -> str:
    """An age X25519 public key (`age1…`), normalised; ValueError naming the string otherwise."""
    from pyrage import RecipientError, x25519

    text = value.strip() if isinstance(value, str) else value
    if not isinstance(text, str) or not text.startswith(RECIPIENT_PREFIX):
        raise ValueError(f"{value!r} is not an age public key (age1…)")
    try:
        return str(x25519.Recipient.from_str(text))
    except RecipientError as err:
        raise ValueError(f"{value!r} is not an age public key ({err})") from None


def parse_kinds(value) -> tuple[str, ...]:
    """`encrypt_kinds`: a list of backup kinds, or "all"."""
    if value == "all" or value == ["all"]:
        return BACKUP_KINDS
    if not isinstance(value, list) or not all(isinstance(k, str) for k in value):
        raise ValueError(f'must be "all" or a list of backup kinds ({", ".join(BACKUP_KINDS)})')
    unknown = [k for k in value if k not in BACKUP_KINDS]
    if unknown:
        raise ValueError(f"unknown backup kind(s) {', '.join(map(repr, unknown))}; kinds: {', '.join(BACKUP_KINDS)}")
    return tuple(dict.fromkeys(value))


@dataclass(frozen=True)
class Encryption:
    """What new backups are encrypted to. Off (plain artifacts) while `recipients` is empty."""

    recipients: tuple[str, ...] = ()
    kinds: tuple[str, ...] = DEFAULT_KINDS

    @classmethod
    def from_config(cls, cfg) -> Encryption:
        return cls(tuple(cfg.encryption_recipients), tuple(cfg.encrypt_kinds))

    @property
    def enabled(self) -> bool:
        return bool(self.recipients)

    def applies_to(self, kind: str) -> bool:
        return self.enabled and kind in self.kinds

    def describe(self) -> dict:
        """The manifest's per-artifact `encryption` entry."""
        return {"format": FORMAT, "recipients": list(self.recipients)}


def parse_identities(password: str | None, conn_id: str = BACKUP_IDENTITY_CONN_ID) -> list:
    """pyrage identities from the connection's password, one `AGE-SECRET-KEY-1…` per line
    (blank lines and `#` comments, as age-keygen writes them, are skipped)."""
    from pyrage import x25519

    identities = []
    for number, line in enumerate((password or "").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            identities.append(x25519.Identity.from_str(line))
        except Exception:  # noqa: BLE001 - pyrage's message may quote the line: never pass it on
            raise IdentityError(f"connection {conn_id!r}: line {number} is not an age identity "
                                f"({IDENTITY_PREFIX}…)") from None
    if not identities:
        raise IdentityError(f"connection {conn_id!r}: its password holds no age identity")
    return identities


def identities_from_connection(conn_id: str = BACKUP_IDENTITY_CONN_ID) -> list:
    """The identities of the backup identity connection; [] when the deployment has none."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        password = BaseHook.get_connection(conn_id).password
    except AirflowNotFoundException:
        log.info("no %s connection: encrypted backups cannot be decrypted here", conn_id)
        return []
    return parse_identities(password, conn_id)


def public_keys(identities: list) -> set[str]:
    return {str(i.to_public()) for i in identities}


def _short(recipient: str) -> str:
    return recipient[:12] + "…"


def check_identities(artifact: dict, identities: list) -> None:
    """UndecryptableError, saying why, unless one of `identities` belongs to a recipient of `artifact`.

    A fast, clear answer before any download; the decryption itself stays the authority.
    """
    recipients = list(artifact["encryption"].get("recipients") or [])
    if not identities:
        raise UndecryptableError(f"{artifact['name']} is encrypted (age) and {CANNOT_RESTORE}: no identity "
                                 f"(connection {BACKUP_IDENTITY_CONN_ID!r} is missing or empty)")
    if recipients and not public_keys(identities) & set(recipients):
        raise UndecryptableError(
            f"{artifact['name']} {CANNOT_RESTORE}: none of the {len(identities)} identities in "
            f"{BACKUP_IDENTITY_CONN_ID!r} matches its recipients ({', '.join(map(_short, recipients))})")


# --- streams ----------------------------------------------------------------------------------
_EOF = object()


class _Stopped(Exception):
    """The other side of a stream gave up (its own error is the one reported)."""


class EncryptingWriter:
    """A write-only stream: plaintext written here leaves as age ciphertext in `sink.write`.

    `close()` ends the age stream (its last chunk) and waits, raising the error that stopped the
    worker (e.g. the upload's); `abort()` stops without the end, so a cut-off stream never decrypts
    as a whole one.
    """

    def __init__(self, sink, recipients: tuple[str, ...] | list[str]):
        from pyrage import x25519

        self._sink = sink
        self._recipients = [x25519.Recipient.from_str(r) for r in recipients]
        self._q: queue.Queue = queue.Queue(maxsize=DEPTH)
        self._stop = threading.Event()
        self._buffer = bytearray()
        self._pending = memoryview(b"")
        self._error: BaseException | None = None
        self.closed = False
        self._worker = threading.Thread(target=self._run, name="age-encrypt", daemon=True)
        self._worker.start()

    # the reader pyrage pulls plaintext from (worker thread)
    def read(self, n: int = -1) -> bytes:
        if not self._pending:
            item = get_unless_stopped(self._q, self._stop, _EOF)
            if item is _EOF:
                if self._stop.is_set():
                    raise _Stopped()
                return b""
            self._pending = memoryview(item)
        n = len(self._pending) if n is None or n < 0 else n
        data, self._pending = bytes(self._pending[:n]), self._pending[n:]
        return data

    def _run(self) -> None:
        from pyrage import encrypt_io

        outer = self

        class Sink:  # keeps the sink's own error: pyrage turns it into an EncryptError string
            def write(self, data) -> int:
                try:
                    return outer._sink.write(data)
                except BaseException as err:
                    outer._error = err
                    raise

            def flush(self) -> None:
                pass

        try:
            encrypt_io(self, Sink(), self._recipients)
        except BaseException as err:  # noqa: BLE001 - handed to the writing thread, raised there
            self._error = self._error or err
            self._stop.set()

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self._buffer += data
        if len(self._buffer) >= CHUNK:
            self._hand_over()
        return len(data)

    def _hand_over(self) -> None:
        chunk, self._buffer = bytes(self._buffer), bytearray()
        if not put_unless_stopped(self._q, chunk, self._stop):
            raise self._failure()

    def _failure(self) -> BaseException:
        err = self._error
        return err if err is not None and not isinstance(err, _Stopped) else VaultError("age encryption stopped")

    def flush(self) -> None:
        pass

    def close(self) -> None:
        """Finish the age stream into the sink; raises the worker's error if it failed."""
        if self.closed:
            return
        self.closed = True
        if self._buffer:
            self._hand_over()
        put_unless_stopped(self._q, _EOF, self._stop)
        self._worker.join()
        if self._stop.is_set():
            raise self._failure()

    def abort(self) -> None:
        self.closed = True
        self._stop.set()
        self._worker.join()


class DecryptingReader:
    """A read-only stream of the plaintext of `source` (an age file, e.g. a HashingReader).

    Errors of `source` (IntegrityError at EOF: the stored bytes are not the manifest's) are
    raised as they are; "no identity matches" as UndecryptableError; a cut-off or altered
    ciphertext as VaultError. `verify()` reads to the end, so the source's checks run and the
    age stream's last chunk is authenticated.
    """

    def __init__(self, source, identities: list, name: str = "artifact", buffer: int = 256 << 10):
        self._source, self._identities, self._name, self._buffer_size = source, identities, name, buffer
        self._q: queue.Queue = queue.Queue(maxsize=DEPTH)
        self._stop = threading.Event()
        self._pending = memoryview(b"")
        self._error: BaseException | None = None
        self._eof = False
        self._worker = threading.Thread(target=self._run, name="age-decrypt", daemon=True)
        self._worker.start()

    def _run(self) -> None:
        from pyrage import DecryptError, decrypt_io

        outer, out = self, bytearray()

        class Source:  # keeps the source's own error (pyrage would flatten it into a string)
            def read(self, n: int = -1) -> bytes:
                try:
                    return outer._source.read(n)
                except BaseException as err:
                    outer._error = err
                    raise

        class Sink:
            def write(self, data) -> int:
                nonlocal out
                out += data
                if len(out) >= outer._buffer_size:
                    chunk, out = bytes(out), bytearray()
                    if not put_unless_stopped(outer._q, chunk, outer._stop):
                        raise _Stopped()
                return len(data)

            def flush(self) -> None:
                pass

        try:
            decrypt_io(Source(), Sink(), self._identities)
            if out and not put_unless_stopped(self._q, bytes(out), self._stop):
                return
        # pyrage raises DecryptError for the header (no identity matches), OSError for a payload chunk
        # that fails authentication (cut off or altered); the source's own errors were kept above.
        except (DecryptError, OSError) as err:
            if self._error is None:
                message = str(err)
                self._error = (UndecryptableError(f"{self._name} {CANNOT_RESTORE}: no identity matches")
                               if "no matching keys" in message.lower()
                               else VaultError(f"{self._name}: age decryption failed, cut off or altered ({message[:200]})"))
        except BaseException as err:  # noqa: BLE001 - handed to the reading thread, raised there
            self._error = self._error or err
        put_unless_stopped(self._q, _EOF, self._stop)

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            parts = [bytes(self._pending)]
            self._pending = memoryview(b"")
            while chunk := self._next():
                parts.append(chunk)
            return b"".join(parts)
        if not self._pending:
            chunk = self._next()
            if not chunk:
                return b""
            self._pending = memoryview(chunk)
        data, self._pending = bytes(self._pending[:n]), self._pending[n:]
        return data

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def _next(self) -> bytes:
        if self._eof:
            return b""
        item = self._q.get()
        if item is _EOF:
            self._eof = True
            self._worker.join()
            if self._error is not None and not isinstance(self._error, _Stopped):
                raise self._error
            return b""
        return item

    def verify(self) -> None:
        """Read to the end (nothing should be left): raises what the source or age found wrong."""
        while self.read(CHUNK):
            pass
        verify = getattr(self._source, "verify", None)
        if verify is not None:
            verify()

    def close(self) -> None:
        self._stop.set()
        self._worker.join(timeout=30)
        self._source.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

