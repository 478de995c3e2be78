"""Airflow's own housekeeping (gravitypm_airflow_housekeeping): the control plane's metadata DB and task logs.

- `metadb`: figures of the metadata DB (row counts, size, oldest dag_run) and `airflow db clean`, both
  run in a subprocess with the control plane's database settings (task code has no ORM access);
- `logs`: task-log retention in Airflow's log folder, and the S3 lifecycle rule that replaces it for
  remote logs;
- `report`: the before/after report, the Slack summary and the audit record.
"""
