"""The import contracts in .importlinter hold, and a wrong arrow really is rejected (a guard that
cannot fail proves nothing). `make test` runs lint-imports too; this keeps both in one place."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(include_dir: Path) -> subprocess.CompletedProcess:
    # cwd = the repo: lint-imports reads .importlinter from there and imports its custom contract
    # type (tests.import_contracts) from there; gravitypm_ops comes from include_dir.
    env = {**os.environ, "PYTHONPATH": str(include_dir), "COLUMNS": "400", "NO_COLOR": "1"}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False,
    )


def test_the_tree_keeps_every_import_contract():
    result = lint_imports(REPO / "include")
    assert result.returncode == 0, result.stdout + result.stderr


def test_wrong_arrows_are_rejected_and_the_broken_contract_is_named(tmp_path):
    shutil.copytree(REPO / "include" / "gravitypm_ops", tmp_path / "gravitypm_ops",
                    ignore=shutil.ignore_patterns("__pycache__"))
    wrong = {
        "formats/streaming.py": "from gravitypm_ops.backup import tasks",  # formats imports the project
        "restore/plan.py": "from gravitypm_ops.backup import tasks as backup_tasks",  # an engine imports tasks
        "vault/layout.py": "from gravitypm_ops import status",  # the vault imports a concern
        "console/html.py": "import botocore.exceptions",  # S3 outside the vault
        "checklists/audit.py": "from airflow.providers.amazon.aws.hooks.s3 import S3Hook",
    }
    for module, line in wrong.items():
        with open(tmp_path / "gravitypm_ops" / module, "a") as f:
            f.write(f"\n{line}  # deliberately wrong\n")

    result = lint_imports(tmp_path)
    out = result.stdout + result.stderr

    assert result.returncode != 0, out
    for contract in (
        "Arrows go down: concern packages -> status, airflow glue -> vault, host -> formats, names, redact",
        "Task bodies are called only by dags/ and plugins/: no library module imports a */tasks module",
        "Only gravitypm_ops.vault imports boto3 or botocore",
        "Only gravitypm_ops.vault imports airflow.providers.amazon",
    ):
        assert f"{contract} BROKEN" in out, out
    assert "The library never imports dags/ or plugins/ KEPT" in out, out
    assert "gravitypm_ops.formats is not allowed to import gravitypm_ops.backup" in out
    assert "gravitypm_ops.vault is not allowed to import gravitypm_ops.status" in out
    assert "gravitypm_ops.restore.plan -> gravitypm_ops.backup.tasks" in out
    assert "gravitypm_ops.console.html -> botocore" in out
    assert "gravitypm_ops.checklists.audit -> airflow.providers.amazon.aws.hooks.s3" in out
