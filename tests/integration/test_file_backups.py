"""gravitypm_fs_backup and gravitypm_config_backup against the real local stack."""

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from gravitypm_ops.formats.tar.compression import Compression, decompressing_reader
from gravitypm_ops.formats.tar.index import read_index
from gravitypm_ops.vault.store import Vault

REPO = Path(__file__).resolve().parents[2]


def vault_of(stack) -> Vault:
    return Vault(stack.vault_bucket, "production", stack.s3_client(), signer=stack.signer())


def index_of(vault: Vault, manifest: dict) -> list[dict]:
    name = next(a["name"] for a in manifest["artifacts"] if a["name"].startswith("index.jsonl"))
    compression = Compression.from_dict(manifest["tools"]["compression"])
    with vault.open_artifact(manifest, name) as body:
        records = list(read_index(decompressing_reader(body, compression)))
        body.verify()
    return records


def files_under(root: Path, skip: tuple[str, ...] = ()) -> dict[str, bytes]:
    found = {}
    for path in root.rglob("*"):
        rel = path.relative_to(root).as_posix()
        if path.is_file() and not path.is_symlink() and not rel.startswith(skip):
            found[rel] = path.read_bytes()
    return found


def test_fs_backup_archives_app_root_without_logs_and_indexes_every_file(run_dag, stack):
    result = run_dag("gravitypm_fs_backup")

    assert result.state == "success", result.task_states
    summary = result.xcom("archive_to_vault")
    vault = vault_of(stack)
    manifest = vault.resolve("fs", summary["backup_id"])
    assert {a["name"] for a in manifest["artifacts"]} == {"files.tar.zst", "index.jsonl.zst"}
    index = {r["path"]: r for r in index_of(vault, manifest) if r["type"] == "file"}
    on_disk = files_under(stack.app_root, skip=("logs",))
    assert set(index) == set(on_disk)
    import hashlib

    for path, data in on_disk.items():
        assert index[path]["sha256"] == hashlib.sha256(data).hexdigest(), path
    assert not any(p.startswith("logs") for p in index)  # log rotation ships logs, not the fs backup
    assert manifest["content"]["files"] == len(index)


def test_config_backup_is_encrypted_and_never_leaks_file_content(run_dag, stack, slack, capfd, caplog):
    result = run_dag("gravitypm_config_backup")

    assert result.state == "success", result.task_states
    vault = vault_of(stack)
    manifest = vault.resolve("config", result.xcom("archive_to_vault")["backup_id"])
    paths = {r["path"] for r in index_of(vault, manifest)}
    assert {".env", "docker-compose.production.yml", "nginx/nginx.conf", "config/app.json"} <= paths
    s3 = stack.s3_client()
    for artifact in manifest["artifacts"]:
        assert s3.head_object(Bucket=stack.vault_bucket, Key=artifact["key"])["ServerSideEncryption"] == "AES256"
    captured = capfd.readouterr()
    seen = "\n".join([captured.out, captured.err, caplog.text, json.dumps(manifest),
                      json.dumps(result.xcom("archive_to_vault")), json.dumps(slack.messages())])
    for secret in ("fake-mongo-secret-7f3a", "fake-jwt-secret-2d8e4b", "fake-oauth-secret-5a1f"):
        assert secret in (stack.app_root / ".env").read_text()
        assert secret not in seen


def readme_block(marker: str) -> list[str]:
    text = (REPO / "README.md").read_text()
    block = re.search(rf"<!-- {marker} -->\s*```bash\n(.*?)```", text, re.S)
    assert block, f"README has no block marked {marker}"
    return [line for line in block.group(1).splitlines() if line.strip() and not line.startswith("#")]


def test_the_readme_restores_an_fs_backup_by_hand_with_standard_tools(run_dag, stack, tmp_path):
    manifest = vault_of(stack).resolve("fs", run_dag("gravitypm_fs_backup").xcom("archive_to_vault")["backup_id"])
    archive = next(a for a in manifest["artifacts"] if a["name"].startswith("files."))
    lines = readme_block("restore-files-by-hand")
    assert lines[0].startswith("export BUCKET=")  # the values a user fills in; we set them below
    env = {
        **os.environ,
        "BUCKET": stack.vault_bucket,
        "PREFIX": archive["key"].rsplit("/", 1)[0],
        "ARCHIVE": archive["name"],
        "TARGET": str(tmp_path / "restore"),
        "AWS_ENDPOINT_URL": stack.url("s3"),
        "AWS_ACCESS_KEY_ID": stack.secrets.aws_access_key_id,
        "AWS_SECRET_ACCESS_KEY": stack.secrets.aws_secret_access_key,
        "AWS_DEFAULT_REGION": "us-east-1",
        "PATH": f"{Path(os.sys.executable).parent}:{os.environ['PATH']}",
    }
    subprocess.run(["bash", "-euo", "pipefail", "-c", "\n".join(lines[1:])], env=env, check=True, cwd=tmp_path)

    assert files_under(tmp_path / "restore") == files_under(stack.app_root, skip=("logs",))


@pytest.mark.parametrize("dag_id", ["gravitypm_fs_backup", "gravitypm_config_backup"])
def test_file_backups_run_on_the_host_queue_and_announce_their_asset(dagbag, dag_id):
    task = dagbag.get_dag(dag_id).task_dict["archive_to_vault"]
    assert task.queue == "gravitypm_host" and task.pool == "gravitypm_host"
    kind = "fs" if dag_id == "gravitypm_fs_backup" else "config"
    assert [a.uri for a in task.outlets] == [f"gravitypm://vault/{kind}"]
    assert dagbag.get_dag(dag_id).schedule.expression == {"fs": "0 2 * * *", "config": "0 3 * * *"}[kind]


def test_a_missing_config_path_fails_preflight_with_its_name(run_dag, stack):
    result = run_dag("gravitypm_config_backup", {"config_paths": ["docker-compose.production.yml", "nope.yml"]})
    assert result.task_states["preflight"] == "failed"
    assert result.task_states["archive_to_vault"] == "upstream_failed"
