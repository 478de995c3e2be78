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


@pytest.mark.parametrize("dag_id", RESTORE_DAGS)
@pytest.mark.parametrize("ref", ["x" * 100_000, "latest@" + "9" * 100_000, "20261127T060000Z-" + "a" * 100_000])
def test_an_overlong_backup_id_is_refused_by_the_form(dagbag, dag_id, ref):
    params = copy.deepcopy(dagbag.get_dag(dag_id).params)
    with pytest.raises(ParamValidationError):
        params["backup_id"] = ref
        params.validate()


@pytest.mark.parametrize("key", ["target_database", "source_database"])
@pytest.mark.parametrize("name", ["admin", "local", "config", "Admin", "CONFIG"])
def test_db_form_refuses_mongodbs_reserved_databases(dagbag, key, name):
    params = copy.deepcopy(dagbag.get_dag("gravitypm_db_restore").params)
    with pytest.raises(ParamValidationError):
        params[key] = name
        params.validate()


@pytest.mark.parametrize("collections", [["system.users"], ["a$b"], ["x" * 300]])
def test_db_form_refuses_system_and_invalid_collections(dagbag, collections):
    params = copy.deepcopy(dagbag.get_dag("gravitypm_db_restore").params)
    with pytest.raises(ParamValidationError):
        params["collections"] = collections
        params.validate()


@pytest.mark.parametrize("target", ["relative/dir", "/srv/a\x00b", "/" + "d" * 5000])
def test_fs_form_refuses_a_bad_target_path(dagbag, target):
    params = copy.deepcopy(dagbag.get_dag("gravitypm_fs_restore").params)
    with pytest.raises(ParamValidationError):
        params["target_path"] = target
        params.validate()


@pytest.mark.parametrize("name", ["admin", "Local", "config"])
def test_drill_form_refuses_reserved_scratch_databases(dagbag, name):
    params = copy.deepcopy(dagbag.get_dag("gravitypm_dr_drill").params)
    with pytest.raises(ParamValidationError):
        params["scratch_database"] = name
        params.validate()


def test_restore_forms_still_accept_ordinary_names(dagbag):
    params = copy.deepcopy(dagbag.get_dag("gravitypm_db_restore").params)
    params["target_database"], params["collections"] = "administration", ["projects", "systems"]
    params.validate()
    params = copy.deepcopy(dagbag.get_dag("gravitypm_fs_restore").params)
    params["target_path"] = "/srv/restore/copy"
    params.validate()


# --- The forms as they open (issue 14 item 15) -------------------------------------------------
# Airflow 3.3's trigger form (ui/src/components/FlexibleForm) counts a param as *required* when its
# schema has a `type` that does not include "null", and marks its section red -- Trigger disabled --
# while a required value is null, undefined or "". The server then validates the conf against each
# Param's JSON schema. A form must pass both with its defaults, untouched.


def _ui_required(schema: dict) -> bool:
    kind = schema.get("type")
    return bool(kind) and (not isinstance(kind, list) or "null" not in kind)


def _all_dag_ids(dagbag):
    return sorted(dagbag.dag_ids)


def test_every_form_opens_without_a_missing_required_value(dagbag):
    missing = {}
    for dag_id in _all_dag_ids(dagbag):
        for name, param in dagbag.get_dag(dag_id).params.items():
            param = dagbag.get_dag(dag_id).params.get_param(name)
            if _ui_required(param.schema) and param.value in (None, ""):
                missing.setdefault(dag_id, []).append(name)
    assert missing == {}, f"the UI shows these as missing and disables Trigger: {missing}"


def test_every_forms_defaults_pass_their_json_schema(dagbag):
    import jsonschema

    bad = {}
    for dag_id in _all_dag_ids(dagbag):
        params = dagbag.get_dag(dag_id).params
        for name in params:
            param = params.get_param(name)
            try:
                jsonschema.validate(param.value, param.schema, format_checker=jsonschema.FormatChecker())
            except jsonschema.ValidationError as exc:
                bad.setdefault(dag_id, []).append(f"{name}: {exc.message}")
        copy.deepcopy(params).validate()
    assert bad == {}


@pytest.mark.parametrize("dag_id", RESTORE_DAGS)
def test_a_restore_form_opens_as_a_dry_run_with_an_optional_confirm(dagbag, dag_id):
    params = dagbag.get_dag(dag_id).params
    assert params["dry_run"] is True
    assert "null" in params.get_param("confirm").schema["type"]
    assert copy.deepcopy(params).validate()["confirm"] in (None, "")


def test_an_empty_confirm_from_the_form_is_none_and_means_the_same_as_an_empty_string():
    from gravitypm_ops.restore.plan import RestoreRefused, require_confirmation

    for empty in (None, ""):
        require_confirmation(False, "gravitypm_production", empty, "target database")  # not production: fine
        with pytest.raises(RestoreRefused, match="type it exactly into `confirm`") as refused:
            require_confirmation(True, "gravitypm_production", empty, "target database")
        assert "got" not in str(refused.value)
