"""gravitypm_fs_restore for real: backups in moto S3, a host tree of the test's own, the dev
host as the app, real DAG runs. Bad input and crafted archives change nothing."""

import io
import json
import os
import tarfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import zstandard

from gravitypm_ops.backup import files as backup_files
from gravitypm_ops.config import parse_config
from gravitypm_ops.vault.store import Vault
from gravitypm_ops.verification.verify import verify_backup

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
FILES = {
    "docker-compose.production.yml": "services: {app: {image: gravitypm/api:1.2.3}}\n",
    ".env": "JWT_SECRET=fake-jwt-secret-for-restore-tests\n",
    "config/app.json": '{"rate_limit_per_minute": 600}\n',
    "uploads/projects/p1/spec.txt": "spec one\n" * 50,
    "uploads/projects/p2/spec.txt": "spec two\n" * 50,
    "uploads/avatars/u1.png": "\x89PNG fake\n",
}


def snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()}


class Setup:
    def __init__(self, stack, tmp_path: Path):
        self.stack = stack
        self.root = tmp_path / "opt" / "gravitypm" / "production"
        for rel, text in FILES.items():
            path = self.root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        self.elsewhere = tmp_path / "restore-area"
        self.elsewhere.mkdir()
        self.prefix = f"fsrestore-{uuid.uuid4().hex[:8]}"
        self.vault = Vault(stack.vault_bucket, self.prefix, stack.s3_client(), signer=stack.signer())
        self.overrides = {
            "vault_prefix": self.prefix, "app_root": str(self.root),
            "restore_allowed_roots": [str(self.root), str(self.elsewhere)],
            "config_paths": ["docker-compose.production.yml", ".env", "config"],
        }
        self.cfg = parse_config({**stack.ops_config(), **self.overrides})
        self.backup = self.take("fs")

    def take(self, kind: str, run_after=T0) -> dict:
        manifest = backup_files.run_backup(kind, self.cfg, self.vault, dag_id="t", run_id=uuid.uuid4().hex,
                                          run_after=run_after)
        assert verify_backup(self.vault, manifest)["status"] == "passed"
        return manifest

    def damage(self) -> None:
        (self.root / "uploads/projects/p1/spec.txt").write_text("overwritten by mistake\n")
        (self.root / "uploads/avatars/u1.png").unlink()
        (self.root / "uploads/projects/p1/new-after-backup.txt").write_text("keep me unless mirroring\n")

    def conf(self, **params) -> dict:
        return {"kind": "fs", "confirm": str(self.root), "dry_run": False, **params}  # the form's default: dry run


@pytest.fixture
def setup(stack, tmp_path):
    return Setup(stack, tmp_path)


def run_restore(run_dag, setup, **params):
    return run_dag("gravitypm_fs_restore", setup.overrides, run_conf=setup.conf(**params))


def test_restore_to_the_original_location_stops_and_starts_the_app_and_leaves_new_files(run_dag, setup, slack):
    setup.damage()

    result = run_restore(run_dag, setup)

    assert result.state == "success", result.task_states
    now = snapshot(setup.root)
    for rel, text in FILES.items():
        assert now[rel] == text, rel
    assert now["uploads/projects/p1/new-after-backup.txt"] == "keep me unless mirroring\n"  # mirror is off
    restored = result.xcom("restore")
    assert restored["verified"] == len(FILES) and restored["left_alone_count"] == 1
    assert json.loads(result.xcom("stop_app")["stdout_tail"])["app_running"] is False
    assert json.loads(result.xcom("start_app")["stdout_tail"])["app_running"] is True
    [text] = slack.texts()
    assert "restored" in text and setup.backup["backup_id"] in text
    assert "fake-jwt-secret" not in json.dumps(result.xcom("report"))  # file contents never reach XCom


def test_dry_run_lists_created_replaced_left_and_changes_nothing(run_dag, setup):
    setup.damage()
    before = snapshot(setup.root)

    result = run_restore(run_dag, setup, dry_run=True, confirm="")

    assert result.state == "success", result.task_states
    changes = result.xcom("plan")["changes"]
    assert changes["created"]["paths"] == ["uploads/avatars/u1.png"]
    assert changes["replaced"]["paths"] == ["uploads/projects/p1/spec.txt"]
    assert changes["left_alone"]["paths"] == ["uploads/projects/p1/new-after-backup.txt"]
    assert changes["unchanged"]["count"] == len(FILES) - 2
    assert snapshot(setup.root) == before
    assert result.task_states["restore"] == "skipped" and result.task_states["stop_app"] == "skipped"


def test_mirror_into_another_allowed_root_with_a_glob_subset(run_dag, setup):
    target = setup.elsewhere / "copy"
    (target / "uploads/projects/p1").mkdir(parents=True)
    (target / "uploads/projects/p1/stale.txt").write_text("not in the backup\n")
    (target / "unrelated.txt").write_text("outside the restored paths\n")

    result = run_restore(run_dag, setup, target_path=str(target), paths=["uploads/projects/*"], mirror=True, confirm="")

    assert result.state == "success", result.task_states
    assert snapshot(target) == {
        "uploads/projects/p1/spec.txt": FILES["uploads/projects/p1/spec.txt"],
        "uploads/projects/p2/spec.txt": FILES["uploads/projects/p2/spec.txt"],
        "unrelated.txt": "outside the restored paths\n",
    }
    assert result.xcom("stop_app")["not_needed"]  # not the production root: the app keeps running


@pytest.mark.parametrize(
    "params, message",
    [
        ({"target_path": "/etc"}, "outside the allowed restore roots"),
        ({"confirm": ""}, "is production: type it exactly into `confirm`"),
        ({"confirm": "/opt/gravitypm/production"}, "is production: type it exactly"),
        ({"paths": ["nothing/here/*"]}, "matches nothing in the backup"),
        ({"paths": ["../../etc/*"]}, "without '..'"),
        ({"kind": "config"}, "no committed config backup"),
        ({"backup_id": "20260101T000000Z-deadbeef"}, "no committed fs backup"),
        ({"target_path": "ELSEWHERE/a-file", "confirm": ""}, "exists and is not a directory"),
        ({"target_path": "ELSEWHERE/" + "n" * 300, "confirm": ""}, "NAME_MAX"),
        # the form takes it (< 4096), but the backup's paths below it (and its staging dir) would not fit
        ({"target_path": "LONG", "confirm": ""}, "PATH_MAX"),
    ],
)
def test_bad_requests_are_refused_before_anything_changes(run_dag, setup, params, message, capfd):
    setup.damage()
    (setup.elsewhere / "a-file").write_text("a file, not a directory\n")
    before = snapshot(setup.root)
    if "target_path" in params:
        params = {**params, "target_path": params["target_path"].replace("ELSEWHERE", str(setup.elsewhere))}
    if params.get("target_path") == "LONG":
        long = str(setup.elsewhere)
        while len(long) < 4040:
            long += "/" + "d" * min(200, 4040 - len(long) - 1)
        params["target_path"] = long

    result = run_restore(run_dag, setup, **params)

    assert result.state == "failed" and result.task_states["plan"] == "failed"
    assert message in capfd.readouterr().out
    assert snapshot(setup.root) == before
    assert result.xcom("report")["outcome"] == "refused: nothing changed"


def test_a_backup_of_the_other_kind_is_refused(run_dag, setup, capfd):
    config_backup = setup.take("config", run_after=T0 + timedelta(minutes=1))

    result = run_restore(run_dag, setup, backup_id=config_backup["backup_id"])

    assert result.state == "failed"
    assert f"no committed fs backup {config_backup['backup_id']!r}" in capfd.readouterr().out


def crafted_backup(setup, index_paths=("innocent.txt",), index_text: str | None = None) -> dict:
    """A committed backup whose archive tries to write outside its target (and whose index is
    `index_text`, when given)."""
    tar_bytes = io.BytesIO()
    with tarfile.open(fileobj=tar_bytes, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in (("innocent.txt", b"hello\n"), ("../../escaped.txt", b"pwned\n")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    index = "".join(json.dumps({"path": path, "type": "file", "size": 6,
                                "sha256": "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"}) + "\n"
                    for path in index_paths) if index_text is None else index_text
    writer = setup.vault.begin_backup("fs", dag_id="attacker", run_id=uuid.uuid4().hex, run_after=T0 + timedelta(hours=1))
    for name, payload in (("files.tar.zst", tar_bytes.getvalue()), ("index.jsonl.zst", index.encode())):
        with writer.artifact(name, compression="zstd", format="x") as out:
            out.write(zstandard.ZstdCompressor().compress(payload))
    return writer.commit(source={}, tools={"compression": {"algorithm": "zstd", "level": 3}, "index": "index.jsonl.zst"},
                         content={})


def test_a_crafted_archive_escaping_the_target_is_rejected_and_nothing_changes(run_dag, setup, capfd):
    evil = crafted_backup(setup)
    target = setup.elsewhere / "t"
    target.mkdir()
    (target / "existing.txt").write_text("untouched\n")

    result = run_restore(run_dag, setup, backup_id=evil["backup_id"], allow_unverified=True,
                         target_path=str(target), confirm="")

    assert result.state == "failed" and result.task_states["restore"] == "failed"
    assert "unsafe entr" in capfd.readouterr().out
    assert snapshot(target) == {"existing.txt": "untouched\n"}  # not even innocent.txt
    assert not (setup.elsewhere / "escaped.txt").exists() and not (setup.elsewhere.parent / "escaped.txt").exists()


@pytest.mark.parametrize("dry_run", [False, True])
def test_an_index_with_an_escaping_path_is_refused_by_the_plan_before_the_app_stops(run_dag, setup, capfd, dry_run):
    evil = crafted_backup(setup, index_paths=("innocent.txt", "../../escaped.txt"))
    target = setup.elsewhere / "t"
    target.mkdir()
    (target / "existing.txt").write_text("untouched\n")

    result = run_restore(run_dag, setup, backup_id=evil["backup_id"], allow_unverified=True, paths=["*"],
                         target_path=str(target), confirm="", stop_services=True, dry_run=dry_run)

    assert result.state == "failed" and result.task_states["plan"] == "failed"
    assert "unsafe path" in capfd.readouterr().out
    assert result.task_states["stop_app"] == "upstream_failed"
    assert snapshot(target) == {"existing.txt": "untouched\n"}
    assert not (setup.elsewhere / "escaped.txt").exists() and not (setup.elsewhere.parent / "escaped.txt").exists()


def test_an_index_record_that_is_no_json_object_is_refused_by_the_plan(setup):
    from gravitypm_ops.restore.plan import RestoreRefused, plan_file_restore

    evil = crafted_backup(setup, index_text='{"path": "innocent.txt", "type": "file", "size": 6}\n["innocent.txt"]\n')
    params = {"kind": "fs", "backup_id": evil["backup_id"], "target_path": str(setup.elsewhere), "dry_run": True,
              "paths": [], "mirror": False, "allow_unverified": True}
    with pytest.raises(RestoreRefused, match=r"index is corrupt: a record is not a JSON object \(\['innocent.txt'\]\)"):
        plan_file_restore(setup.cfg, setup.vault, params, datetime.now(UTC))


def test_the_dry_run_never_reads_through_a_symlink_in_the_target(run_dag, setup, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "app.json").write_text(FILES["config/app.json"])  # what the backup holds: reading through says 'unchanged'
    (setup.root / "config/app.json").unlink()
    (setup.root / "config").rmdir()
    (setup.root / "config").symlink_to(outside)

    result = run_restore(run_dag, setup, dry_run=True, confirm="")

    assert result.state == "success", result.task_states
    changes = result.xcom("plan")["changes"]
    assert {"config", "config/app.json"} <= set(changes["replaced"]["paths"])
    assert "config/app.json" not in changes["unchanged"]["paths"]


def test_a_restore_that_does_not_fit_the_target_filesystem_is_refused_by_the_plan(run_dag, setup, capfd, monkeypatch):
    import shutil as shutil_module
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil_module, "disk_usage", lambda path: usage(10_000, 9_990, 10))
    setup.damage()
    before = snapshot(setup.root)

    result = run_restore(run_dag, setup)

    assert result.state == "failed" and result.task_states["plan"] == "failed"
    assert "has only 10 bytes free" in capfd.readouterr().out
    assert result.task_states["stop_app"] == "upstream_failed"
    assert snapshot(setup.root) == before


def test_a_restore_and_its_plan_hold_little_of_the_index_per_file(stack, tmp_path):
    """restore_files streams the index into the extractor's compact check instead of loading its records
    first as well: ~280 bytes a file instead of ~710 (0.3 instead of 0.7 GB for a million files). The
    plan, which holds the records, keeps only the fields it reads."""
    import tracemalloc

    from gravitypm_ops.restore.apply import restore_files
    from gravitypm_ops.restore.plan import plan_file_restore

    def peak(work):
        tracemalloc.start()
        try:
            return work(), tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    def peaks(files: int) -> tuple[int, int]:
        """(the plan's peak, the restore's peak) for a backup of `files` one-byte files."""
        root = tmp_path / f"app-{files}"
        root.mkdir()
        (root / "big.bin").write_bytes(os.urandom(24 << 20))  # fills the decompression queue: a constant
        for i in range(files):
            (root / f"d{i // 500:03d}").mkdir(parents=True, exist_ok=True)
            (root / f"d{i // 500:03d}" / f"file-{i:06d}.txt").write_bytes(b"x")
        prefix = f"fsmem-{uuid.uuid4().hex[:8]}"
        vault = Vault(stack.vault_bucket, prefix, stack.s3_client(), signer=stack.signer())
        cfg = parse_config({**stack.ops_config(), "vault_prefix": prefix, "app_root": str(root),
                            "restore_allowed_roots": [str(tmp_path)]})
        bid = backup_files.run_backup("fs", cfg, vault, dag_id="t", run_id=uuid.uuid4().hex, run_after=T0)["backup_id"]
        params = {"kind": "fs", "backup_id": bid, "target_path": str(tmp_path / f"planned-{files}"), "paths": [],
                  "mirror": False, "dry_run": True, "allow_unverified": True}
        planned, plan_peak = peak(lambda: plan_file_restore(cfg, vault, params, datetime.now(UTC)))
        assert planned["changes"]["created"]["count"] == files + 1 + files // 500  # files, big.bin, directories
        plan = {"backup": {"kind": "fs", "backup_id": bid}, "target_path": str(tmp_path / f"out-{files}"),
                "paths": None, "mirror": False}
        report, restore_peak = peak(lambda: restore_files(vault, plan))
        assert report["files"] == report["verified"] == files + 1
        return plan_peak, restore_peak

    (plan_small, small), (plan_large, large) = peaks(1_000), peaks(9_000)
    # Measured: ~545 bytes a file for the plan (~645 with whole records); ~280 for the restore (~400 with a
    # set of seen paths and hex digests, ~710 with the records loaded first as well).
    assert (plan_large - plan_small) / 8_000 < 600, f"plan peak {plan_small / 2**20:.1f} / {plan_large / 2**20:.1f} MiB"
    assert (large - small) / 8_000 < 350, f"restore peak {small / 2**20:.1f} MiB (1k files), {large / 2**20:.1f} MiB (9k)"
