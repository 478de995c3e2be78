"""The restore trigger forms reject malformed input before a run exists (JSON-schema Params)."""

import copy

import pytest
from airflow.sdk.exceptions import ParamValidationError

RESTORE_DAGS = ("gravitypm_db_restore", "gravitypm_fs_restore")


@pytest.mark.parametrize("dag_id", RESTORE_DAGS)
@pytest.mark.parametrize("ref", ["latest", "latest@2026-11-27T06:00:00+00:00", "20261127T060000Z-0a1b2c3d4e"])
def test_backup_refs_the_vault_resolves_are_accepted(dagbag, dag_id, ref):
    params = copy.deepcopy(dagbag.get_dag(dag_id).params)
    params["backup_id"] = ref
    assert params.validate()["backup_id"] == ref


@pytest.mark.parametrize("dag_id", RESTORE_DAGS)
@pytest.mark.parametrize("key, value", [("backup_id", "../../etc"), ("backup_id", ""), ("source", "elsewhere")])
def test_malformed_input_is_refused_by_the_form(dagbag, dag_id, key, value):
    params = copy.deepcopy(dagbag.get_dag(dag_id).params)
    with pytest.raises(ParamValidationError):
        params[key] = value
        params.validate()


@pytest.mark.parametrize("key, value", [("target_database", "prod db"), ("collections", "tasks")])
def test_db_form_checks_names_and_types(dagbag, key, value):
    params = copy.deepcopy(dagbag.get_dag("gravitypm_db_restore").params)
    with pytest.raises(ParamValidationError):
        params[key] = value
        params.validate()
