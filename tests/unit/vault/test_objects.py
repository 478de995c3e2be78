"""The write-once store against a fake client: what a racing writer looks like."""

import pytest
from botocore.exceptions import ClientError

from gravitypm_ops.checklists.audit import AuditLog
from gravitypm_ops.vault.layout import WriteConflict
from gravitypm_ops.vault.store import Vault


class Racing:
    """A client whose conditional PUT always meets another writer of the same key."""

    class exceptions:
        ClientError = ClientError

    def put_object(self, **kwargs):
        assert kwargs["IfNoneMatch"] == "*"
        raise ClientError({"Error": {"Code": "ConditionalRequestConflict"}}, "PutObject")


def test_a_racing_writer_is_a_write_conflict_and_the_audit_chains_after_it():
    vault = Vault("b", "p", Racing())
    with pytest.raises(WriteConflict):
        vault.put_once("p/x.json", {})
    assert AuditLog(vault)._put("p/audit/c/0000000001.json", {}) is False  # re-reads the tail, tries the next seq
