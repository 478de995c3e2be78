"""GravityPM Ops: the library behind the gravitypm_* Airflow DAGs.

Plain Python, importable without Airflow's metadata DB; DAG files import from here.
"""

__version__ = "0.1.0"
