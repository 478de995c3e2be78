"""verify.py's guards that need no server: the trial restore's scratch names."""

import pytest

from gravitypm_ops.verification.verify import CheckFailed, check_db_restore

MANIFEST = {"backup_id": "20261127T060000Z-0a1b2c3d4e", "content": {"databases": {"gravitypm_production": {}}}}


@pytest.mark.parametrize("scratch", ["Gravitypm_Production", "ADMIN", "local", "config"])
def test_a_trial_restore_never_targets_production_in_any_case_nor_a_reserved_database(scratch):
    # The refusal comes before the vault or MongoDB is touched (both None here).
    with pytest.raises(CheckFailed, match="production or reserved database"):
        check_db_restore(None, MANIFEST, None, "", {"gravitypm_production"}, scratch_database=scratch)


def test_scratch_names_must_carry_the_prefix():
    with pytest.raises(CheckFailed):
        check_db_restore(None, MANIFEST, None, "gravitypm_scratch_", set(), scratch_database="elsewhere")
