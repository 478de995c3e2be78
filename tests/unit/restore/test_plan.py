"""restore.plan without a vault server: every knowable refusal happens in the plan, before anything changes."""

import hashlib
import io
import json
import os
from datetime import UTC, datetime, timedelta

import pytest
import zstandard

from gravitypm_ops.config import parse_config
from gravitypm_ops.restore import plan as restore_plan
from gravitypm_ops.restore.plan import RestoreRefused
from gravitypm_ops.vault.layout import IntegrityError, VaultError

NOW = datetime.now(UTC).replace(microsecond=0)
BACKUP_ID = "20261127T060000Z-0a1b2c3d4e"
PASSED = {"status": "passed"}


class FakeVault:
    """resolve / open_artifact / check_artifact over in-memory artifacts."""

    def __init__(self, manifest: dict, blobs: dict[str, bytes]):
        self.manifest, self.blobs, self.checked = manifest, blobs, []

    def resolve(self, kind, ref):
        if ref not in ("latest", self.manifest["backup_id"]) or kind != self.manifest["kind"]:
            raise VaultError(f"no committed {kind} backup {ref!r}")
        return self.manifest

    def open_artifact(self, manifest, name):
        return io.BytesIO(self.blobs[name])

    def check_artifact(self, manifest, name):
        self.checked.append(name)
        artifact = next(a for a in manifest["artifacts"] if a["name"] == name)
        data = self.blobs[name]
        if len(data) != artifact["size"] or hashlib.sha256(data).hexdigest() != artifact["sha256"]:
            raise IntegrityError(f"{name}: read {len(data)} bytes, manifest says {artifact['size']}")
        return len(data)


def _artifact(name: str, data: bytes) -> dict:
    return {"name": name, "key": f"k/{name}", "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def db_vault(databases=None, *, tamper=False) -> FakeVault:
    data = b"\x1f\x8b archive bytes"
    databases = databases or {"gravitypm_production": {"projects": {"type": "collection", "documents": 3}}}
    manifest = {"backup_id": BACKUP_ID, "kind": "db", "finished": (NOW - timedelta(hours=1)).isoformat(),
                "artifacts": [_artifact("mongodump.archive.gz", data)], "content": {"databases": databases},
                "verification": PASSED}
    return FakeVault(manifest, {"mongodump.archive.gz": data + (b"!" if tamper else b"")})


def fs_vault(records: list[dict], *, kind="fs") -> FakeVault:
    index = zstandard.ZstdCompressor().compress(b"".join(json.dumps(r).encode() + b"\n" for r in records))
    archive = b"tar bytes"
    manifest = {"backup_id": BACKUP_ID, "kind": kind, "finished": (NOW - timedelta(hours=1)).isoformat(),
                "artifacts": [_artifact("files.tar.zst", archive), _artifact("index.jsonl.zst", index)],
                "tools": {"compression": {"algorithm": "zstd", "level": 3}, "index": "index.jsonl.zst"},
                "content": {}, "verification": PASSED}
    return FakeVault(manifest, {"files.tar.zst": archive, "index.jsonl.zst": index})


def f(path, data=b"x", **extra):
    return {"path": path, "type": "file", "size": len(data), "sha256": hashlib.sha256(data).hexdigest(), **extra}


def db_params(**params):
    return {"backup_id": "latest", "source_database": "gravitypm_production", "target_database": "staging_x",
            "collections": [], "dry_run": False, "allow_unverified": False, "require_approval": None,
            "confirm": "", **params}


def fs_params(**params):
    return {"kind": "fs", "backup_id": "latest", "paths": [], "target_path": None, "mirror": False,
            "dry_run": False, "stop_services": None, "allow_unverified": False, "confirm": "", **params}


@pytest.fixture
def cfg(tmp_path):
    root = tmp_path / "prod"
    root.mkdir()
    other = tmp_path / "restore-area"
    other.mkdir()
    return parse_config({"app_root": str(root), "restore_allowed_roots": [str(root), str(other)],
                         "mongo_databases": ["gravitypm_production"]})


# --- item 2: MongoDB's reserved databases and system collections; production is case-insensitive ---

@pytest.mark.parametrize("target", ["admin", "local", "config", "Admin", "LOCAL"])
def test_a_reserved_database_is_never_a_restore_target(cfg, target):
    with pytest.raises(RestoreRefused, match="target_database .*reserved"):
        restore_plan.plan_db_restore(cfg, db_vault(), db_params(target_database=target), NOW)


def test_a_reserved_database_is_never_a_restore_source(cfg):
    vault = db_vault({"admin": {"system.users": {"type": "collection", "documents": 1}}})
    with pytest.raises(RestoreRefused, match="source_database .*reserved"):
        restore_plan.plan_db_restore(cfg, vault, db_params(source_database="admin"), NOW)


@pytest.mark.parametrize("collections", [["system.users"], ["system.js", "projects"]])
def test_system_collections_are_refused(cfg, collections):
    with pytest.raises(RestoreRefused, match="system collection"):
        restore_plan.plan_db_restore(cfg, db_vault(), db_params(collections=collections), NOW)


def test_a_backup_holding_a_system_collection_is_refused_when_restoring_everything(cfg):
    vault = db_vault({"gravitypm_production": {"projects": {"type": "collection", "documents": 3},
                                               "system.js": {"type": "collection", "documents": 1}}})
    with pytest.raises(RestoreRefused, match="system collection"):
        restore_plan.plan_db_restore(cfg, vault, db_params(), NOW)


def test_production_names_match_case_insensitively(cfg):
    with pytest.raises(RestoreRefused, match="is production"):
        restore_plan.plan_db_restore(cfg, db_vault(), db_params(target_database="Gravitypm_Production"), NOW)
    plan = restore_plan.plan_db_restore(
        cfg, db_vault(), db_params(target_database="Gravitypm_Production", confirm="Gravitypm_Production"), NOW)
    assert plan["production"] and plan["needs_approval"] and plan["stop_app"]


# --- item 7 (db): the artifact is checked against the manifest in the plan ---

def test_an_altered_db_artifact_is_refused_in_the_plan(cfg):
    vault = db_vault(tamper=True)
    with pytest.raises(RestoreRefused, match="does not match its manifest"):
        restore_plan.plan_db_restore(cfg, vault, db_params(), NOW)
    assert vault.checked == ["mongodump.archive.gz"]


def test_an_intact_db_artifact_passes_the_plan(cfg):
    vault = db_vault()
    plan = restore_plan.plan_db_restore(cfg, vault, db_params(), NOW)
    assert plan["artifact_checked"] is True and vault.checked == ["mongodump.archive.gz"]


@pytest.mark.parametrize("ref", ["x" * 100_000, "latest@" + "9" * 100_000, "../../etc", "latest\x00"])
def test_an_overlong_or_malformed_backup_id_is_refused_by_name(cfg, ref):
    with pytest.raises(RestoreRefused, match="backup_id"):
        restore_plan.plan_db_restore(cfg, db_vault(), db_params(backup_id=ref), NOW)
    with pytest.raises(RestoreRefused, match="backup_id"):
        restore_plan.plan_file_restore(cfg, fs_vault([f("a.txt")]), fs_params(backup_id=ref), NOW)


# --- item 7 (files): index paths and the target are checked in the plan ---

@pytest.mark.parametrize("bad", ["../escaped.txt", "/etc/passwd", "a/../../b", "a\x00b"])
def test_an_unsafe_index_path_is_refused_in_the_plan(cfg, bad):
    vault = fs_vault([f("innocent.txt"), f(bad)])
    with pytest.raises(RestoreRefused, match="unsafe path"):
        restore_plan.plan_file_restore(cfg, vault, fs_params(paths=["*"], confirm=cfg.app_root), NOW)
    with pytest.raises(RestoreRefused, match="unsafe path"):
        restore_plan.plan_file_restore(cfg, vault, fs_params(dry_run=True), NOW)


def test_a_hard_link_out_of_the_archive_is_refused_in_the_plan(cfg):
    vault = fs_vault([f("a.txt"), {**f("b.txt"), "type": "hardlink", "target": "../../etc/shadow"}])
    with pytest.raises(RestoreRefused, match="unsafe"):
        restore_plan.plan_file_restore(cfg, vault, fs_params(confirm=cfg.app_root), NOW)


def test_a_target_that_is_a_regular_file_is_refused(cfg, tmp_path):
    target = tmp_path / "restore-area" / "a-file"
    target.write_text("not a directory\n")
    with pytest.raises(RestoreRefused, match="target_path .*not a directory"):
        restore_plan.plan_file_restore(cfg, fs_vault([f("a.txt")]), fs_params(target_path=str(target)), NOW)


def test_a_target_with_a_nul_or_too_long_is_refused(cfg, tmp_path):
    area = tmp_path / "restore-area"
    for target, why in ((f"{area}/a\x00b", "NUL"), (f"{area}/{'n' * 300}", "NAME_MAX"),
                        (f"{area}/" + "/".join(["d" * 200] * 25), "PATH_MAX")):
        with pytest.raises(RestoreRefused, match=f"target_path .*{why}"):
            restore_plan.plan_file_restore(cfg, fs_vault([f("a.txt")]), fs_params(target_path=target), NOW)


def test_index_paths_too_long_under_the_target_are_refused(cfg, tmp_path):
    deep = "/".join(["d" * 200] * 21) + "/file.txt"  # fits alone, not below the target and its staging dir
    with pytest.raises(RestoreRefused, match="PATH_MAX"):
        restore_plan.plan_file_restore(cfg, fs_vault([f(deep)]), fs_params(target_path=str(tmp_path / "restore-area")), NOW)


def test_a_restore_that_does_not_fit_on_the_target_filesystem_is_refused(cfg, tmp_path, monkeypatch):
    target = tmp_path / "restore-area"
    free = 1000
    monkeypatch.setattr(restore_plan.shutil, "disk_usage", lambda path: os.statvfs_result if False else
                        type("U", (), {"total": 10_000, "used": 9_000, "free": free})())
    vault = fs_vault([f("small.txt", b"x" * 10), {**f("big.bin"), "size": 5000}])
    with pytest.raises(RestoreRefused, match="free"):
        restore_plan.plan_file_restore(cfg, vault, fs_params(target_path=str(target)), NOW)
    plan = restore_plan.plan_file_restore(cfg, vault, fs_params(target_path=str(target), paths=["small.txt"]), NOW)
    assert plan["bytes_needed"] == 10 and plan["bytes_free"] == free


# --- item 5: the dry run never reads outside the target ---

def test_the_dry_run_never_follows_a_symlink_in_the_target(cfg, tmp_path):
    outside = tmp_path / "secret"
    outside.write_bytes(b"x")  # same bytes as the backup's file: following the link would say 'unchanged'
    target = tmp_path / "restore-area" / "t"
    target.mkdir()
    (target / "a.txt").symlink_to(outside)
    (target / "sub").symlink_to(tmp_path)  # a directory symlink: never descended into
    vault = fs_vault([f("a.txt"), {"path": "sub", "type": "dir"}, f("sub/secret"),
                      {"path": "link", "type": "symlink", "target": "a.txt"}])
    (target / "link").symlink_to("a.txt")

    changes = restore_plan.plan_file_restore(cfg, vault, fs_params(target_path=str(target), dry_run=True), NOW)["changes"]

    assert changes["replaced"]["paths"] == ["a.txt", "sub", "sub/secret"]
    assert changes["unchanged"]["paths"] == ["link"]  # a symlink compared as a symlink


def test_diff_against_disk_applies_the_restore_path_rules(tmp_path):
    (tmp_path / "t").mkdir()
    (tmp_path / "outside.txt").write_bytes(b"x")
    with pytest.raises(RestoreRefused, match="unsafe path"):
        restore_plan.diff_against_disk([f("../outside.txt")], str(tmp_path / "t"), None, False)
    with pytest.raises(RestoreRefused, match="unsafe path"):
        restore_plan.diff_against_disk([f(str(tmp_path / "outside.txt"))], str(tmp_path / "t"), None, False)


def test_the_dry_run_into_a_new_directory_creates_everything(cfg, tmp_path):
    target = tmp_path / "restore-area" / "new"
    vault = fs_vault([{"path": "d", "type": "dir"}, f("d/a.txt")])
    plan = restore_plan.plan_file_restore(cfg, vault, fs_params(target_path=str(target), dry_run=True), NOW)
    assert plan["changes"]["created"]["paths"] == ["d", "d/a.txt"] and not target.exists()


def test_a_file_on_disk_where_the_backup_has_a_directory_is_replaced_not_read_through(tmp_path):
    (tmp_path / "d").write_text("a file, not a directory\n")
    changes = restore_plan.diff_against_disk([{"path": "d", "type": "dir"}, f("d/a.txt")], str(tmp_path), None, False)
    assert changes["replaced"]["paths"] == ["d", "d/a.txt"] and changes["created"]["count"] == 0


def test_restore_db_never_acts_on_a_reserved_target_even_from_a_forged_plan():
    from gravitypm_ops.restore.apply import restore_db

    plan = {"source_database": "gravitypm_production", "target_database": "Config", "collections": ["x"],
            "backup": {"backup_id": BACKUP_ID}, "documents": {}}
    with pytest.raises(RestoreRefused, match="reserved"):
        restore_db(db_vault(), client=None, plan=plan)


def test_a_negative_size_in_the_index_cannot_hide_a_big_file_from_the_free_space_check(cfg, tmp_path):
    vault = fs_vault([{**f("big.bin"), "size": 10**15}, {**f("minus.bin"), "size": -(10**15)}])
    with pytest.raises(RestoreRefused, match="unsafe"):
        restore_plan.plan_file_restore(cfg, vault, fs_params(target_path=str(tmp_path / "restore-area")), NOW)
