"""The dags/ folder parses cleanly, fast, and without touching the network or the metadata DB."""

from bench.dag_parse import parse_dags_isolated


def test_dags_folder_parses_with_no_services_and_no_errors():
    report = parse_dags_isolated()
    assert report["import_errors"] == {}
    assert report["network_attempts"] == []
    assert "gravitypm_morning_checklist" in report["dag_ids"]
    assert all(dag_id.startswith("gravitypm_") for dag_id in report["dag_ids"])


def test_a_dag_file_that_reaches_the_network_at_parse_time_is_caught(tmp_path):
    # The guard itself must work, or the test above proves nothing.
    (tmp_path / "bad_dag.py").write_text(
        "import urllib.request\n"
        "urllib.request.urlopen('http://127.0.0.1:9/', timeout=1)\n"
        "from airflow.sdk import dag\n"
        "@dag(dag_id='gravitypm_bad', schedule=None)\n"
        "def bad():\n    pass\n"
        "bad()\n"
    )
    report = parse_dags_isolated(tmp_path)
    assert report["network_attempts"], report
    assert any("bad_dag.py" in path for path in report["import_errors"])
