import sys
from pathlib import Path

# The benchmarks import the library as the DAGs do (include/ is on PYTHONPATH there).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "include"))


def random_blob_backup(vault, mib: int) -> dict:
    """Commit one backup of `mib` MiB of random bytes (incompressible) and return its manifest."""
    import os
    from datetime import UTC, datetime

    writer = vault.begin_backup("logs", dag_id="bench", run_id="r", run_after=datetime.now(UTC))
    with writer.artifact("blob.bin", compression="none", format="bytes") as out:
        for _ in range(mib):
            out.write(os.urandom(1 << 20))
    return writer.commit(source={}, tools={}, content={})
