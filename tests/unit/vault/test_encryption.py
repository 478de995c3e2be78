"""vault/encryption.py: recipients and identities, the streaming age writer and reader, the config keys,
and what hygiene and the console say about it. S3-free: the streams are exercised over in-memory sinks."""

import hashlib
import io
import json
import subprocess
import sys

import pyrage
import pytest
from pyrage import x25519

from gravitypm_ops.config import ConfigError, parse_config
from gravitypm_ops.console.backups import encryption_text
from gravitypm_ops.host.checks import check_vault_hygiene
from gravitypm_ops.vault.encryption import (
    CANNOT_RESTORE,
    MAGIC,
    DecryptingReader,
    EncryptingWriter,
    Encryption,
    IdentityError,
    UndecryptableError,
    check_identities,
    parse_identities,
    parse_recipient,
)
from gravitypm_ops.vault.layout import IntegrityError, VaultError
from gravitypm_ops.vault.streams import HashingReader

OPS, RECOVERY = x25519.Identity.generate(), x25519.Identity.generate()
RECIPIENTS = [str(OPS.to_public()), str(RECOVERY.to_public())]


class Sink:
    def __init__(self, fail_after: int | None = None):
        self.data, self.fail_after = bytearray(), fail_after

    def write(self, data) -> int:
        if self.fail_after is not None and len(self.data) >= self.fail_after:
            raise ConnectionError("S3 went away")
        self.data += data
        return len(data)


def encrypt(plaintext: bytes, write_size: int = 1000) -> bytes:
    sink = Sink()
    writer = EncryptingWriter(sink, RECIPIENTS)
    for i in range(0, len(plaintext), write_size):
        writer.write(plaintext[i : i + write_size])
    writer.close()
    return bytes(sink.data)


@pytest.mark.parametrize("size", [0, 1, 65536, 3 * 2**20 + 17])
def test_the_writer_streams_standard_age_that_either_recipient_opens(size):
    plaintext = bytes(range(256)) * (size // 256) + b"x" * (size % 256)

    ciphertext = encrypt(plaintext, write_size=70000)

    assert ciphertext.startswith(MAGIC + b"\n")
    assert pyrage.decrypt(ciphertext, [OPS]) == plaintext == pyrage.decrypt(ciphertext, [RECOVERY])
    assert plaintext[:64] not in ciphertext or size < 64


def test_the_reader_returns_the_plaintext_in_any_read_size():
    plaintext = hashlib.sha256(b"seed").digest() * 100_000  # 3.2 MB
    ciphertext = encrypt(plaintext, write_size=4096)
    for n in (1, 7, 8192, 1 << 20, -1):
        reader = DecryptingReader(io.BytesIO(ciphertext), [RECOVERY])
        got = bytearray()
        while chunk := reader.read(n):
            got += chunk
            if n == -1:
                break
        reader.verify()
        reader.close()
        assert bytes(got) == plaintext, n


def test_the_reader_checks_the_stored_bytes_hash_through_the_hashing_reader():
    ciphertext = encrypt(b"config\n" * 1000)
    artifact = {"key": "k", "size": len(ciphertext), "sha256": "0" * 64}  # a manifest that disagrees

    with (pytest.raises(IntegrityError, match="sha256"),
          DecryptingReader(HashingReader(io.BytesIO(ciphertext), artifact), [OPS]) as reader):
        reader.read()


def test_no_matching_identity_is_undecryptable_and_says_so():
    ciphertext = encrypt(b"secret")
    with pytest.raises(UndecryptableError, match=CANNOT_RESTORE):
        DecryptingReader(io.BytesIO(ciphertext), [x25519.Identity.generate()], "files.tar.zst").read()


def test_a_cut_off_or_altered_ciphertext_never_reads_as_whole():
    ciphertext = encrypt(b"a" * 200_000)
    altered = bytearray(ciphertext)
    altered[-5] ^= 1
    for bad in (ciphertext[:-100], bytes(altered)):
        reader = DecryptingReader(io.BytesIO(bad), [OPS])
        with pytest.raises(VaultError, match="age decryption failed"):
            while reader.read(65536):
                pass


def test_a_failing_sink_raises_its_own_error_and_abort_leaves_no_whole_stream():
    writer = EncryptingWriter(Sink(fail_after=100_000), RECIPIENTS)
    with pytest.raises(ConnectionError, match="S3 went away"):
        for _ in range(100):
            writer.write(b"z" * 2**20)
        writer.close()

    sink = Sink()
    writer = EncryptingWriter(sink, RECIPIENTS)
    writer.write(b"y" * 3 * 2**20)
    writer.abort()  # the producer failed: the age stream must not be finished
    with pytest.raises(pyrage.DecryptError):
        pyrage.decrypt(bytes(sink.data), [OPS])


def test_memory_stays_bounded_encrypting_and_decrypting_256_mib_from_a_generator():
    """In a fresh interpreter (ru_maxrss is per process): 256 MiB through the writer, then back through
    the reader, while peak RSS grows by a few MiB, not by the data's size."""
    code = r"""
import io, json, resource, sys, hashlib
from pyrage import x25519
from gravitypm_ops.vault.encryption import EncryptingWriter, DecryptingReader
ident = x25519.Identity.generate()
def rss(): return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
class Spool:  # keeps the ciphertext on disk, so only the streams' own buffers are in memory
    def __init__(self): self.f = open(sys.argv[1], "w+b")
    def write(self, d): return self.f.write(d)
block = bytes(range(256)) * 256
base = rss()
spool = Spool()
w = EncryptingWriter(spool, [str(ident.to_public())])
for i in range(4096): w.write(block)
w.close()
after_encrypt = rss()
spool.f.seek(0)
r = DecryptingReader(spool.f, [ident])
sha, n = hashlib.sha256(), 0
while chunk := r.read(1 << 20):
    sha.update(chunk); n += len(chunk)
print(json.dumps({"encrypt": after_encrypt - base, "decrypt": rss() - base, "bytes": n,
                  "ok": sha.hexdigest() == hashlib.sha256(block * 4096).hexdigest()}))
"""
    import tempfile

    with tempfile.NamedTemporaryFile() as spool:
        out = subprocess.run([sys.executable, "-c", code, spool.name], capture_output=True, text=True, check=True,
                             env={"PYTHONPATH": "include"}).stdout
    result = json.loads(out)
    assert result["ok"] and result["bytes"] == 256 * 2**20
    assert result["encrypt"] < 48 and result["decrypt"] < 48, result


def test_recipients_are_checked_and_a_bad_one_is_a_config_error_naming_it():
    assert parse_recipient(" " + RECIPIENTS[0] + " ") == RECIPIENTS[0]
    cfg = parse_config({"encryption_recipients": RECIPIENTS})
    assert cfg.encryption_recipients == tuple(RECIPIENTS) and cfg.encrypt_kinds == ("config", "db")
    for bad in ("age1notakey", "ssh-ed25519 AAAA", "AGE-SECRET-KEY-1QQQ"):
        with pytest.raises(ConfigError, match="encryption_recipients") as err:
            parse_config({"encryption_recipients": [RECIPIENTS[0], bad]})
        assert repr(bad) in str(err.value) and "not an age public key" in str(err.value)
    with pytest.raises(ConfigError, match="encryption_recipients"):
        parse_config({"encryption_recipients": RECIPIENTS[0]})  # a list, not a string


def test_encrypt_kinds_take_all_or_known_kinds():
    assert parse_config({"encrypt_kinds": "all"}).encrypt_kinds == ("db", "fs", "config", "logs")
    assert parse_config({"encrypt_kinds": ["fs"]}).encrypt_kinds == ("fs",)
    with pytest.raises(ConfigError, match="encrypt_kinds.*'files'"):
        parse_config({"encrypt_kinds": ["files"]})
    assert not Encryption((), ("db",)).applies_to("db")  # no recipients: off
    assert Encryption(tuple(RECIPIENTS), ("db",)).applies_to("db")
    assert not Encryption(tuple(RECIPIENTS), ("db",)).applies_to("fs")


def test_identities_come_one_per_line_and_a_bad_line_is_never_quoted():
    text = f"# created: today\n# public key: {RECIPIENTS[0]}\n{OPS}\n\n{RECOVERY}\n"
    assert [str(i.to_public()) for i in parse_identities(text)] == RECIPIENTS
    secretish = "AGE-SECRET-KEY-1NOTREALLYAKEYBUTSECRET"
    with pytest.raises(IdentityError, match="line 2") as err:
        parse_identities(f"{OPS}\n{secretish}\n")
    assert secretish not in str(err.value) and str(OPS) not in str(err.value)
    with pytest.raises(IdentityError, match="no age identity"):
        parse_identities("\n# nothing\n")


def test_an_identity_matching_no_recipient_is_a_clear_message_before_any_download():
    artifact = {"name": "mongodump.archive.gz", "encryption": {"format": "age", "recipients": RECIPIENTS}}
    check_identities(artifact, [x25519.Identity.generate(), RECOVERY])  # one match is enough
    with pytest.raises(UndecryptableError) as err:
        check_identities(artifact, [x25519.Identity.generate()])
    message = str(err.value)
    assert CANNOT_RESTORE in message and "none of the 1 identities" in message and RECIPIENTS[0][:12] in message
    with pytest.raises(UndecryptableError, match="gravitypm_backup_identity"):
        check_identities(artifact, [])


def test_vault_hygiene_warns_while_backups_are_not_client_side_encrypted():
    settings = {"versioning": "Enabled", "object_lock": None, "lifecycle_rules": [
        {"Status": "Enabled", "Filter": {"Prefix": ""}, "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
         "NoncurrentVersionExpiration": {"NoncurrentDays": 30}}]}
    off = check_vault_hygiene({**settings, "client_encryption": {"recipients": 0, "kinds": ["config", "db"]}}, "p")
    on = check_vault_hygiene({**settings, "client_encryption": {"recipients": 2, "kinds": ["config", "db"]}}, "p")
    finding = {f.subject: f for f in off.findings}["client_encryption"]
    assert off.status == "warning" and "backups are not client-side encrypted" in finding.detail
    assert on.status == "ok" and "2 recipients" in {f.subject: f for f in on.findings}["client_encryption"].detail


def test_scrub_never_lets_an_identity_through():
    from gravitypm_ops.redact import scrub

    text = f"IdentityError: could not parse {OPS} (line 1)"
    assert str(OPS) not in scrub(text) and "AGE-SECRET-KEY-1***" in scrub(text)
    assert scrub(RECIPIENTS[0]) == RECIPIENTS[0]  # public keys are not secrets


def test_the_backups_page_says_how_a_backup_is_encrypted():
    enc = {"format": "age", "recipients": RECIPIENTS}
    assert encryption_text({"artifacts": [{"encryption": enc}, {"encryption": enc}]}) == "encrypted (age, 2 recipients)"
    assert encryption_text({"artifacts": [{"encryption": None}]}) == "not client-side encrypted"
    assert encryption_text({"artifacts": [{}]}) == "not client-side encrypted"  # a manifest from before issue 17
    assert encryption_text({"artifacts": [{"encryption": enc}, {}]}).startswith("partly encrypted")
