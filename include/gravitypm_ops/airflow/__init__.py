"""Airflow glue shared by every DAG: conventions (default args, callbacks), Slack alerts, approval, task helpers."""
