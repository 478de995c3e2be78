"""README "Restoring an encrypted backup by hand", run exactly as written with Debian's `age` (installed with
apt-get when missing) and the recovery key that `make up` keeps in `.state/` (never given to Airflow).

The DB block ends with `mongorestore`, which no registry reachable here ships (see LOCAL-STACK.md;
mongo-tools restored these archives byte for byte when built from source elsewhere). So every line
before it runs as written, and the `age -d` output is checked to be byte for byte the gzip'd
mongodump archive the backup wrote, and to parse with the project's mongo_archive reader (written
from mongo-tools' spec) — what `mongorestore --gzip --archive` reads.
"""

import gzip
import os
import re
import subprocess
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from gravitypm_ops.backup import mongo as backup_mongo
from gravitypm_ops.config import parse_config
from gravitypm_ops.formats.mongo_archive.reader import ArchiveReader
from gravitypm_ops.vault.encryption import MAGIC
from gravitypm_ops.vault.store import Vault
from tests.processes import find_or_install

REPO = Path(__file__).resolve().parents[2]
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


def readme_block(marker: str) -> list[str]:
    text = (REPO / "README.md").read_text()
    block = re.search(rf"<!-- {marker} -->\s*```bash\n(.*?)```", text, re.DOTALL)
    assert block, f"README has no block marked {marker}"
    return [line for line in block.group(1).splitlines() if line.strip() and not line.startswith("#")]


def run_lines(lines: list[str], env: dict, cwd: Path) -> None:
    subprocess.run(["bash", "-euo", "pipefail", "-c", "\n".join(lines)], env=env, check=True, cwd=cwd)


def shell_env(stack, **values) -> dict:
    return {
        **os.environ, **values,
        "BUCKET": stack.vault_bucket,
        "AWS_ENDPOINT_URL": stack.url("s3"),
        "AWS_ACCESS_KEY_ID": stack.secrets.aws_access_key_id,
        "AWS_SECRET_ACCESS_KEY": stack.secrets.aws_secret_access_key,
        "AWS_DEFAULT_REGION": "us-east-1",
        "PATH": f"{Path(os.sys.executable).parent}:{os.environ['PATH']}",
    }


def files_under(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file() and not p.is_symlink()}


def with_recovery_key(tmp_path: Path, stack) -> None:
    find_or_install("age", "age", "Debian's age (the README's restore by hand)")
    (tmp_path / "key.txt").write_text(stack.secrets.age_recovery_identity + "\n")


def test_the_readme_restores_an_encrypted_config_backup_by_hand(run_dag, stack, tmp_path):
    prefix = f"byhand-{uuid.uuid4().hex[:8]}"
    result = run_dag("gravitypm_config_backup", {"vault_prefix": prefix})
    assert result.state == "success", result.task_states
    vault = Vault(stack.vault_bucket, prefix, stack.s3_client(), signer=stack.signer())
    manifest = vault.resolve("config", result.xcom("archive_to_vault")["backup_id"])
    archive = next(a for a in manifest["artifacts"] if a["name"] == "files.tar.zst")
    assert archive["encryption"]["format"] == "age"
    with_recovery_key(tmp_path, stack)
    lines = readme_block("restore-encrypted-files-by-hand")
    assert lines[0].startswith("export BUCKET=")  # the values a user fills in; set below
    target = tmp_path / "restore"

    run_lines(lines[1:], shell_env(stack, PREFIX=archive["key"].rsplit("/", 1)[0], TARGET=str(target)), tmp_path)

    assert (tmp_path / "files.tar.zst.age").read_bytes().startswith(MAGIC)
    expected = {}
    for path in manifest["source"]["roots"]:
        root = Path(path)
        rel = root.relative_to(stack.app_root).as_posix()
        expected.update({f"{rel}/{k}": v for k, v in files_under(root).items()} if root.is_dir()
                        else {rel: root.read_bytes()})
    assert files_under(target) == expected
    assert b"fake-jwt-secret-2d8e4b" in (target / ".env").read_bytes()


def test_the_readme_decrypts_an_encrypted_db_backup_by_hand_to_the_mongodump_archive(stack, small_db, tmp_path):
    prefix = f"byhand-{uuid.uuid4().hex[:8]}"
    cfg = parse_config({**stack.ops_config(), "vault_prefix": prefix, "mongo_databases": [small_db]})
    vault = Vault.from_config(cfg)
    manifest = backup_mongo.run_backup(cfg, vault, stack.mongo_client(), dag_id="t", run_id=uuid.uuid4().hex,
                                       run_after=T0)
    [artifact] = manifest["artifacts"]
    assert artifact["encryption"]["recipients"] == stack.secrets.age_recipients
    with vault.open_artifact(manifest, backup_mongo.ARTIFACT_NAME) as body:  # the plaintext, via the suite
        plaintext = body.read()
    with_recovery_key(tmp_path, stack)
    lines = readme_block("restore-encrypted-db-by-hand")
    assert lines[0].startswith("export BUCKET=") and lines[-1].startswith("mongorestore ")

    run_lines(lines[1:-1], shell_env(stack, PREFIX=artifact["key"].rsplit("/", 1)[0]), tmp_path)

    archive = (tmp_path / "mongodump.archive.gz").read_bytes()
    assert archive == plaintext and archive[:2] == b"\x1f\x8b"
    counts = {}
    with gzip.open(tmp_path / "mongodump.archive.gz") as unzipped:
        for db, coll, _ in ArchiveReader(unzipped).iter_documents():
            counts[(db, coll)] = counts.get((db, coll), 0) + 1
    assert counts == {(small_db, "items"): manifest["content"]["databases"][small_db]["items"]["documents"]}
