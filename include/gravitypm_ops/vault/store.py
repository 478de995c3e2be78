"""The backup vault: an S3 bucket + prefix, reached through the `gravitypm_aws` connection.

Key layout, the same for every kind:

    <vault_prefix>/<kind>/<YYYY>/<MM>/<DD>/<backup_id>/<artifact>…
    <vault_prefix>/<kind>/<YYYY>/<MM>/<DD>/<backup_id>/manifest.json   ← written last: commits the backup

- A prefix without a manifest is not a backup: listing, `latest`, restores and retention
  never see it.
- `backup_id` = `<run_after as YYYYmmddTHHMMSSZ>-<hash of dag_id/run_id>`: sortable by time,
  unique per DAG run, and the same on every retry of that run — so a re-run finds the
  committed backup and returns it instead of writing a second one (idempotent by run_id).
- Artifacts stream up as multipart uploads, hashed (SHA-256) and sized on the fly; at most
  one part is held in memory. A failed backup aborts its uploads and commits nothing.
- Encryption at rest on every object (SSE-S3, or SSE-KMS with `kms_key_id`); optional
  Object Lock retention (`object_lock_days`, COMPLIANCE mode) for immutable vaults.
- Client-side encryption (encryption.py): artifacts of the kinds in `encrypt_kinds` are age-encrypted
  to `encryption_recipients` on their way up (`BackupWriter.artifact`) and decrypted on the way
  down (`Vault.open_artifact`); sizes and hashes in the manifest are the stored ciphertext's.
- Verification records live beside the manifest in `verifications/`, one JSON object per run,
  never overwritten; every manifest the vault hands out carries the newest as `verification`.
- With a `signer` (connection `gravitypm_signing_key`, see signing.py) manifests, verification
  records and status.json are signed when written, and what is read back is used only when its
  signature checks and it sits where it claims to (a manifest at its own backup's key, a record
  beside its own backup under its own time): the rest is left out and noted in `rejected`.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from gravitypm_ops.names import AWS_CONN_ID
from gravitypm_ops.vault.encryption import DecryptingReader, EncryptingWriter, Encryption, check_identities
from gravitypm_ops.vault.layout import (
    MANIFEST_NAME,
    MANIFEST_SCHEMA_VERSION,
    SAFETY_PURPOSE,
    VERIFICATIONS_DIR,
    Artifact,
    IntegrityError,
    ObjectMissing,
    VaultError,
    backup_id_for,
    backup_prefix,
    verified_ok,
)
from gravitypm_ops.vault.objects import ObjectStore
from gravitypm_ops.vault.signing import Signer, signer_from_connection
from gravitypm_ops.vault.streams import ArtifactUpload, HashingReader, Protection, clean_up_after

log = logging.getLogger(__name__)


@dataclass
class BackupWriter:
    """One backup being written. Use `Vault.begin_backup`; commit with `commit()`."""

    vault: Vault
    kind: str
    backup_id: str
    dag_id: str
    run_id: str
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    artifacts: list[Artifact] = field(default_factory=list)
    _open: list[ArtifactUpload] = field(default_factory=list)

    @property
    def prefix(self) -> str:
        return backup_prefix(self.vault.prefix, self.kind, self.backup_id)

    @contextmanager
    def artifact(self, name: str, *, compression: str, format: str) -> Iterator[ArtifactUpload | EncryptingWriter]:
        """Stream one artifact: write (plaintext) to the yielded object; on error the upload is aborted.

        The one place artifacts are written: a kind in `encrypt_kinds` gets an age-encrypting writer
        in front of the upload, which then hashes and stores ciphertext only.
        """
        encryption = self.vault.encryption
        upload = self.vault.upload(self.prefix + name)
        sink = EncryptingWriter(upload, encryption.recipients) if encryption.applies_to(self.kind) else upload
        self._open.append(upload)
        try:
            yield sink
            if sink is not upload:
                sink.close()  # the age stream's last chunk
            size, sha, version = upload.complete()
        except BaseException as err:
            if sink is not upload:
                sink.abort()
            upload.abort(err)
            raise
        finally:
            self._open.remove(upload)
        self.vault.protect(upload.key, version)
        self.artifacts.append(Artifact(name, upload.key, size, sha, compression, format,
                                       encryption.describe() if sink is not upload else None))

    def commit(self, *, source: dict, tools: dict, content: dict, extra: dict | None = None) -> dict:
        """Write manifest.json (never over an existing one): from here on the backup exists."""
        manifest = {
            "schema_version": MANIFEST_SCHEMA_VERSION,
            "kind": self.kind,
            "backup_id": self.backup_id,
            "dag_id": self.dag_id,
            "run_id": self.run_id,
            "started": self.started.isoformat(),
            "finished": datetime.now(UTC).isoformat(),
            "source": source,
            "artifacts": [asdict(a) for a in self.artifacts],
            "tools": tools,
            "protection": self.vault.protection.describe(),
            "content": content,
            **(extra or {}),
        }
        manifest = self.vault.sign(manifest)
        if not self.vault.put_once(self.prefix + MANIFEST_NAME, manifest):
            raise VaultError(f"backup {self.backup_id} is already committed; refusing to overwrite")
        return {**manifest, "verification": None}

    def abort(self, cause: BaseException | None = None) -> None:
        """Abort open uploads and remove uploaded artifacts: nothing of this attempt stays behind.

        `cause` is the error that ends this attempt (``except BaseException as err:
        writer.abort(err); raise``): a clean-up that fails too (S3 gone mid-upload) is then logged
        and noted on `cause` instead of raised, so the caller reports the error that broke the
        backup, not the clean-up's. What stays behind has no manifest, so it is no backup; the
        next attempt of the run clears it (`Vault.begin_backup`), the bucket's
        AbortIncompleteMultipartUpload lifecycle rule ends stray uploads.
        """
        if cause is None:
            self._abort()
        else:
            clean_up_after(cause, f"cleaning up backup {self.backup_id}", self._abort)

    def _abort(self) -> None:
        for upload in list(self._open):
            upload.abort()
        self.vault.discard_incomplete(self.prefix)
        for artifact in self.artifacts:
            self.vault.delete_key(artifact.key)
        self.artifacts.clear()


class Vault(ObjectStore):
    """Backups in the vault: writing, listing, resolving, reading back, verification records, status.

    Leases, retention and bucket hygiene are in `leases`, `retention` and `hygiene`; copies
    between vaults in `transfer`.
    """

    def __init__(self, bucket: str, prefix: str, s3_client, protection: Protection = Protection(),
                 signer: Signer | None = None, encryption: Encryption = Encryption(),  # noqa: B008 - frozen
                 identities: Callable[[], list] | None = None):
        super().__init__(bucket, prefix, s3_client, protection)
        self.signer = signer
        self.rejected: dict[str, str] = {}  # key -> why: documents read and left out (see `rejection`)
        self.encryption = encryption  # what new artifacts are encrypted to (off without recipients)
        # The age identities, loaded on the first decryption only (default: connection gravitypm_backup_identity).
        self._load_identities = identities
        self._identities: list | None = None

    @classmethod
    def from_config(cls, cfg, aws_conn_id: str = AWS_CONN_ID) -> Vault:
        from gravitypm_ops.vault.objects import s3_client

        return cls(
            cfg.vault_bucket,
            cfg.vault_prefix,
            s3_client(aws_conn_id),
            Protection(kms_key_id=cfg.kms_key_id, object_lock_days=cfg.object_lock_days),
            signer_from_connection(),
            Encryption.from_config(cfg),
        )

    def identities(self) -> list:
        """The age identities that decrypt artifacts, read once, when first needed (never logged)."""
        if self._identities is None:
            from gravitypm_ops.vault.encryption import identities_from_connection

            self._identities = (self._load_identities or identities_from_connection)()
        return self._identities

    # --- signatures (signing.py) ------------------------------------------------------------
    def sign(self, doc: dict) -> dict:
        """`doc` as the vault stores it: signed when the vault has a signer."""
        return self.signer.sign(doc) if self.signer else doc

    def rejection(self, key: str, doc, manifest: dict | None = None) -> str:
        """"" when the document read from `key` may be used, else why not (logged once, kept in `rejected`).

        `manifest` is given for a verification record: the backup it must belong to. Without a
        signer every JSON object is used, as before signing existed.
        """
        why = "" if isinstance(doc, dict) else "not a JSON object"
        if not why and self.signer is not None:
            why = self.signer.problem(doc) or self._misplaced(key, doc, manifest)
        if why:
            if key not in self.rejected:
                log.warning("%s left out: %s", key, why)
            self.rejected[key] = why
        return why

    def _misplaced(self, key: str, doc: dict, manifest: dict | None) -> str:
        """A signed document copied to another key (a passed record of backup A beside backup B, an old
        record renamed to sort as the newest, a manifest moved to another id) is no longer what was signed."""
        if key == self.status_key:
            return ""
        try:
            if manifest is None:
                expected = backup_prefix(self.prefix, doc["kind"], doc["backup_id"]) + MANIFEST_NAME
                return "" if key == expected else f"signed as {expected}"
            if (doc.get("kind"), doc.get("backup_id")) != (manifest["kind"], manifest["backup_id"]):
                return f"signed for backup {doc.get('backup_id')!r}, not {manifest['backup_id']!r}"
            stamp = f"{datetime.fromisoformat(doc['finished']):%Y%m%dT%H%M%S%fZ}-"
        except (KeyError, TypeError, ValueError) as err:
            return f"signed, but not a manifest or record of this vault ({type(err).__name__})"
        return "" if key.rsplit("/", 1)[-1].startswith(stamp) else "signed under another name (finished time differs)"

    def _read_accepted(self, key: str, manifest: dict | None = None) -> dict | None:
        """The JSON document at `key` if `rejection` lets it through; None when absent or rejected.
        Garbage (not JSON) is rejected too: one bad object must not stop every listing."""
        try:
            doc = self.read_json(key)
        except ValueError as err:
            doc = err
        if doc is None or self.rejection(key, doc, manifest):
            return None
        return doc

    def signing_report(self, limit: int = 50) -> dict:
        """status.json's `signing` entry: on or off, the signing key's id, what was left out."""
        if self.signer is None:
            return {"enabled": False}
        rejected = [{"key": k, "reason": why} for k, why in sorted(self.rejected.items())]
        return {"enabled": True, "key_id": self.signer.key_id, "rejected_count": len(rejected),
                "rejected": rejected[:limit]}

    # --- access -----------------------------------------------------------------------------
    def check_access(self) -> None:
        """Fail fast, with a clear reason, when the bucket is missing or the credentials are wrong."""
        try:
            self.s3.head_bucket(Bucket=self.bucket)
            self.s3.list_objects_v2(Bucket=self.bucket, Prefix=self.prefix + "/", MaxKeys=1)
        except self.s3.exceptions.ClientError as err:
            code = str(err.response.get("Error", {}).get("Code"))
            if code in ("404", "NoSuchBucket"):
                raise VaultError(f"vault bucket {self.bucket!r} does not exist (config key vault_bucket)") from None
            if code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
                raise VaultError(
                    f"access to vault bucket {self.bucket!r} denied ({code}): check the {AWS_CONN_ID} connection"
                ) from None
            raise VaultError(f"vault bucket {self.bucket!r}: {code}") from None

    # --- writing ----------------------------------------------------------------------------
    def begin_backup(self, kind: str, *, dag_id: str, run_id: str, run_after: datetime) -> BackupWriter | dict:
        """A writer for this DAG run's backup, or its manifest if the run already committed one."""
        backup_id = backup_id_for(dag_id, run_id, run_after)
        writer = BackupWriter(self, kind, backup_id, dag_id, run_id)
        existing = self.read_json(writer.prefix + MANIFEST_NAME)
        if existing is not None and (why := self.rejection(writer.prefix + MANIFEST_NAME, existing)):
            raise VaultError(f"{writer.prefix}{MANIFEST_NAME} exists but is not this suite's ({why}): refusing "
                             "to write this run's backup beside it; remove the object and retry")
        if existing is not None:
            log.info("backup %s already committed by this run: returning it", backup_id)
            return self._with_verification(existing)
        # Leftovers of an earlier failed attempt of this run are not a backup: clear them.
        writer.abort()
        self.delete_prefix(writer.prefix)
        return writer

    # --- reading ----------------------------------------------------------------------------
    def _listing(self, kind: str) -> dict[str, dict]:
        """One LIST of a kind: {backup prefix: {"manifest": key, "verifications": [keys, oldest first]}}.

        Only prefixes with a manifest are returned: without one there is no backup.
        """
        found: dict[str, dict] = {}
        for key in self.list_keys(f"{self.prefix}/{kind}/"):
            if key.endswith("/" + MANIFEST_NAME):
                found.setdefault(key.removesuffix(MANIFEST_NAME), {"verifications": []})["manifest"] = key
            elif f"/{VERIFICATIONS_DIR}" in key:
                prefix = key.split(VERIFICATIONS_DIR, 1)[0]
                found.setdefault(prefix, {"verifications": []})["verifications"].append(key)
        # <date>/<backup_id>/ sorts by time: the last prefix is the newest backup.
        return {p: {**v, "verifications": sorted(v["verifications"])} for p, v in sorted(found.items()) if "manifest" in v}

    def list_backups(self, kind: str) -> list[dict]:
        """Every committed backup of `kind`, oldest first, as manifests with their newest verification
        record attached as `verification` (None when never verified)."""
        backups = []
        for entry in self._listing(kind).values():
            manifest = self._read_accepted(entry["manifest"])
            if manifest is not None:
                manifest["verification"] = self._newest_record(manifest, entry["verifications"])
                backups.append(manifest)
        return backups

    def _newest_record(self, manifest: dict, keys: list[str]) -> dict | None:
        """The newest usable verification record among `keys` (oldest first); rejected ones are skipped."""
        for key in reversed(keys):
            record = self._read_accepted(key, manifest)
            if record is not None:
                return record
        return None

    def latest(self, kind: str, as_of: datetime | None = None) -> dict | None:
        """What `latest` means: the newest backup that passed its newest verification (finished at
        or before `as_of`). While no backup of the kind was ever verified (a new installation): the
        newest committed. A backup whose newest verification failed is never returned, nor a
        pre-restore safety backup (it holds the state a restore replaced, often the broken one;
        restore it by id)."""
        backups = [
            m for m in self.list_backups(kind)
            if m.get("purpose") != SAFETY_PURPOSE and (as_of is None or datetime.fromisoformat(m["finished"]) <= as_of)
        ]
        verified = [m for m in backups if verified_ok(m)]
        if verified:
            return verified[-1]
        if any(m["verification"] for m in backups):
            return None  # verification runs and nothing passed: no backup is trustworthy
        return backups[-1] if backups else None

    def resolve(self, kind: str, ref: str) -> dict:
        """A backup by id, "latest", or "latest@<ISO time>" (latest as of that time)."""
        if ref == "latest" or ref.startswith("latest@"):
            as_of = None
            if ref.startswith("latest@"):
                try:
                    as_of = datetime.fromisoformat(ref.removeprefix("latest@"))
                except ValueError:
                    raise VaultError(f"{ref!r}: expected latest@<ISO 8601 time>") from None
                as_of = as_of if as_of.tzinfo else as_of.replace(tzinfo=UTC)
            found = self.latest(kind, as_of)
            if found is None:
                raise VaultError(f"no committed {kind} backup" + (f" as of {as_of.isoformat()}" if as_of else ""))
            return found
        try:
            key = backup_prefix(self.prefix, kind, ref) + MANIFEST_NAME
        except ValueError:
            raise VaultError(f"{ref!r} is not a backup id, 'latest' or 'latest@<time>'") from None
        manifest = self.read_json(key)
        if manifest is None:
            raise VaultError(f"no committed {kind} backup {ref!r}")
        if why := self.rejection(key, manifest):
            raise VaultError(f"{kind} backup {ref!r} refused: its manifest is {why}" if why == "not signed"
                             else f"{kind} backup {ref!r} refused: its manifest: {why}")
        return self._with_verification(manifest)

    # --- verification records ---------------------------------------------------------------
    def _with_verification(self, manifest: dict) -> dict:
        """Every manifest the vault hands out carries its newest verification record (or None)."""
        records = self.verifications(manifest)
        return {**manifest, "verification": records[-1] if records else None}

    def verifications(self, manifest: dict) -> list[dict]:
        """Every verification record of one backup, oldest first."""
        prefix = backup_prefix(self.prefix, manifest["kind"], manifest["backup_id"]) + VERIFICATIONS_DIR
        return [r for r in (self._read_accepted(k, manifest) for k in sorted(self.list_keys(prefix))) if r is not None]

    def record_verification(self, manifest: dict, record: dict) -> str:
        """Store a verification record beside the manifest; write-once and locked like every backup object."""
        finished = datetime.fromisoformat(record["finished"])
        digest = hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()[:8]
        name = f"{finished:%Y%m%dT%H%M%S%fZ}-{digest}.json"  # sorts by time
        key = backup_prefix(self.prefix, manifest["kind"], manifest["backup_id"]) + VERIFICATIONS_DIR + name
        if not self.put_once(key, self.sign(record)):
            raise VaultError(f"{key}: this verification record is already stored; records are never overwritten")
        return key

    @property
    def status_key(self) -> str:
        return f"{self.prefix}/status.json"

    def read_status(self) -> dict | None:
        """The status `write_status` last wrote (None before the first verification run, or when its
        signature does not check: then `rejected` says why). ValueError when it is not JSON."""
        doc = self.read_json(self.status_key)
        return None if doc is None or self.rejection(self.status_key, doc) else doc

    def write_status(self, status: dict) -> str:
        """The machine-readable backup status (one object, rewritten each verification run)."""
        self.put(self.status_key, self.sign(status))
        return self.status_key

    def open_artifact(self, manifest: dict, name: str) -> HashingReader | DecryptingReader:
        """Stream an artifact down, as plaintext; the stored bytes' size and SHA-256 are checked against
        the manifest at EOF. An encrypted artifact is decrypted with the identities Airflow holds
        (UndecryptableError, before any download, when none belongs to its recipients)."""
        artifact = next((a for a in manifest["artifacts"] if a["name"] == name), None)
        if artifact is None:
            raise VaultError(f"backup {manifest['backup_id']} has no artifact {name!r}")
        encryption = artifact.get("encryption")
        if encryption:
            if encryption.get("format") != "age":
                raise VaultError(f"{artifact['key']}: unknown encryption format {encryption.get('format')!r}")
            check_identities(artifact, self.identities())
        reader = HashingReader(self.open_object(artifact["key"]), artifact)
        return DecryptingReader(reader, self.identities(), artifact["name"]) if encryption else reader

    def check_artifact(self, manifest: dict, name: str, chunk: int = 1 << 20) -> int:
        """Re-read one artifact and check its size and SHA-256 (IntegrityError if they differ).

        The download runs in its own thread while this one hashes, so hashing hides behind the
        transfer. Returns the size read.
        """
        from gravitypm_ops.formats.streaming import prefetch

        artifact = next((a for a in manifest["artifacts"] if a["name"] == name), None)
        if artifact is None:
            raise VaultError(f"backup {manifest['backup_id']} has no artifact {name!r}")
        try:
            body = self.open_object(artifact["key"])
        except ObjectMissing:
            raise IntegrityError(f"{artifact['key']}: missing from the vault") from None
        sha, size = hashlib.sha256(), 0
        with body:
            for data in prefetch(iter(lambda: body.read(chunk), b""), batch=1, depth=8):
                sha.update(data)
                size += len(data)
        if size != artifact["size"] or sha.hexdigest() != artifact["sha256"]:
            raise IntegrityError(
                f"{artifact['key']}: read {size} bytes sha256 {sha.hexdigest()[:16]}…, "
                f"manifest says {artifact['size']} bytes sha256 {artifact['sha256'][:16]}…"
            )
        return size

    def summary(self, kind: str, now: datetime) -> dict | None:
        """Machine-readable state of one kind (the status file's entry), None without backups."""
        backups = self.list_backups(kind)
        if not backups:
            return None
        newest = backups[-1]
        return {
            "count": len(backups),
            "total_bytes": sum(a["size"] for m in backups for a in m["artifacts"]),
            "latest_id": newest["backup_id"],
            "age_hours": round((now - datetime.fromisoformat(newest["finished"])).total_seconds() / 3600, 2),
            "bytes": sum(a["size"] for a in newest["artifacts"]),
            "verified": verified_ok(newest),
            "last_verification": None if newest["verification"] is None else {
                k: newest["verification"][k] for k in ("status", "finished", "checks")
            },
            "latest_verified_id": next((m["backup_id"] for m in reversed(backups) if verified_ok(m)), None),
        }

    # --- copies (off-site; see offsite/copy.py) ------------------------------------------------
    def inventory(self, kind: str) -> dict[str, dict]:
        """From one LIST: {backup_id: {"prefix", "manifest": key, "verifications": [keys, oldest first]}}
        of every committed backup of `kind`, oldest first. No object is read."""
        return {
            prefix.rstrip("/").rsplit("/", 1)[-1]: {"prefix": prefix, **entry}
            for prefix, entry in self._listing(kind).items()
        }
