"""HMAC signatures of manifests and verification records (vault/signing.py): pure logic."""

import json

import pytest

from gravitypm_ops.vault.signing import UNSIGNED, Signer, SigningKeyError, canonical

KEY_A, KEY_B = "a" * 64, "b" * 64
MANIFEST = {"kind": "db", "backup_id": "20261201T060000Z-0a1b2c3d4e", "finished": "2026-12-01T06:10:00+00:00",
            "artifacts": [{"name": "x", "size": 5, "sha256": "00"}], "verification": None}


def test_a_signed_document_checks_after_a_json_round_trip():
    signed = Signer([KEY_A]).sign(MANIFEST)
    assert signed["signature"]["alg"] == "HMAC-SHA256"
    assert Signer([KEY_A]).problem(json.loads(json.dumps(signed))) == ""


def test_the_attached_verification_is_not_signed():
    """The vault attaches the newest record to every manifest it hands out: that must not break the signature."""
    signed = Signer([KEY_A]).sign(MANIFEST)
    assert Signer([KEY_A]).problem({**signed, "verification": {"status": "passed"}}) == ""


@pytest.mark.parametrize("change", [
    lambda d: d.update(backup_id="20261201T060000Z-ffffffffff"),
    lambda d: d["artifacts"][0].update(sha256="11"),
    lambda d: d.update(extra="added"),
    lambda d: d["signature"].update(hmac="0" * 64),
])
def test_any_change_breaks_the_signature(change):
    doc = json.loads(json.dumps(Signer([KEY_A]).sign(MANIFEST)))
    change(doc)
    assert Signer([KEY_A]).problem(doc) != ""


def test_unsigned_and_foreign_keys_are_refused_by_name():
    assert Signer([KEY_A]).problem(MANIFEST) == UNSIGNED
    assert "Airflow does not hold" in Signer([KEY_A]).problem(Signer([KEY_B]).sign(MANIFEST))
    assert Signer([KEY_A]).problem({**MANIFEST, "signature": "passed"}) == "signature is not HMAC-SHA256"


def test_rotation_signs_with_the_first_key_and_verifies_with_all():
    old = Signer([KEY_A]).sign(MANIFEST)
    rotated = Signer([KEY_B, KEY_A])
    assert rotated.problem(old) == ""
    assert rotated.sign(MANIFEST)["signature"]["key_id"] == Signer([KEY_B]).key_id != Signer([KEY_A]).key_id


def test_the_key_id_and_repr_reveal_no_key():
    signer = Signer.from_password(f"{KEY_A}\n\n{KEY_B}\n")
    assert KEY_A[:8] not in signer.key_id and KEY_A[:8] not in repr(signer)
    assert "keys=2" in repr(signer)


@pytest.mark.parametrize("password", [None, "", "tiny-key"])
def test_unusable_keys_are_a_clear_error_without_the_key(password):
    with pytest.raises(SigningKeyError, match="gravitypm_signing_key") as err:
        Signer.from_password(password)
    assert "tiny-key" not in str(err.value)


def test_canonical_form_is_stable_for_non_json_values():
    from datetime import UTC, datetime

    doc = {"when": datetime(2026, 12, 1, tzinfo=UTC), "items": (1, 2)}
    assert canonical(doc) == canonical(json.loads(json.dumps(doc, default=str)))


def test_the_example_files_placeholder_key_is_flagged():
    assert Signer.from_password("change-me-to-the-output-of-openssl-rand-hex-32").placeholder
    assert not Signer([KEY_A]).placeholder
