"""Vault key layout: backup ids and prefixes."""

from datetime import UTC, datetime, timedelta

from gravitypm_ops.vault.layout import backup_id_for, backup_prefix

T0 = datetime(2026, 11, 27, 6, 0, tzinfo=UTC)


def test_backup_ids_sort_by_time_and_are_stable_per_run():
    a = backup_id_for("d", "manual__1", T0)
    assert a == backup_id_for("d", "manual__1", T0)  # a retry of the run gets the same id
    assert a != backup_id_for("d", "manual__2", T0)  # another run at the same time does not
    assert backup_id_for("d", "x", T0 + timedelta(seconds=1)) > a
    assert backup_prefix("production", "db", a) == f"production/db/2026/11/27/{a}/"
