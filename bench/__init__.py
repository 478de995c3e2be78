import sys
from pathlib import Path

# The benchmarks import the library as the DAGs do (include/ is on PYTHONPATH there).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "include"))
