"""A tiny client for Airflow 3's REST API (/api/v2), used by `make up`'s smoke run and the e2e test."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path


class AirflowAPI:
    def __init__(self, base_url: str, username: str = "admin", password: str | None = None):
        self.base_url = base_url.rstrip("/")
        self.username = username
        self.password = password
        self._token: str | None = None

    @staticmethod
    def standalone_password(airflow_home: Path, username: str = "admin") -> str | None:
        path = Path(airflow_home) / "simple_auth_manager_passwords.json.generated"
        return json.loads(path.read_text()).get(username) if path.exists() else None

    def _request(self, method: str, path: str, body=None, auth: bool = True, attempts: int = 5):
        """One API call. The local stack's SQLite metadata DB answers 500 ("database is locked") now and
        then under load, having changed nothing: the call is tried again, up to `attempts` times."""
        headers = {"Content-Type": "application/json"}
        if auth:
            headers["Authorization"] = f"Bearer {self.token()}"
        data = None if body is None else json.dumps(body).encode()
        for attempt in range(attempts):
            req = urllib.request.Request(self.base_url + path, data=data, method=method, headers=headers)
            try:
                with urllib.request.urlopen(req, timeout=30) as resp:
                    raw = resp.read()
                    return json.loads(raw) if raw else None
            except urllib.error.HTTPError as err:
                if err.code != 500 or attempt == attempts - 1:
                    raise
                time.sleep(2)

    def token(self) -> str:
        if self._token is None:
            answer = self._request(
                "POST", "/auth/token", {"username": self.username, "password": self.password}, auth=False
            )
            self._token = answer["access_token"]
        return self._token

    def healthy(self) -> bool:
        try:
            health = self._request("GET", "/api/v2/monitor/health", auth=False)
        except (OSError, urllib.error.URLError):
            return False
        return all(
            (health.get(part) or {}).get("status") == "healthy" for part in ("metadatabase", "scheduler")
        )

    def wait_healthy(self, timeout: float = 180.0, alive=lambda: True) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not alive():
                raise RuntimeError("Airflow exited during start-up")
            if self.healthy():
                return
            time.sleep(1)
        raise TimeoutError(f"Airflow at {self.base_url} not healthy within {timeout:.0f}s")

    def get(self, path: str):
        return self._request("GET", path)

    def wait_for_dag(self, dag_id: str, timeout: float = 120.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                return self.get(f"/api/v2/dags/{dag_id}")
            except urllib.error.HTTPError as err:
                if err.code != 404:
                    raise
            time.sleep(1)
        raise TimeoutError(f"DAG {dag_id} not parsed within {timeout:.0f}s")

    def unpause(self, dag_id: str) -> None:
        self._request("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})

    def trigger(self, dag_id: str, conf: dict | None = None) -> str:
        run = self._request("POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf or {}})
        return run["dag_run_id"]

    def mark_run(self, dag_id: str, run_id: str, state: str) -> dict:
        """Set a run's state as the UI's "Mark as" does ("failed" also stops its running tasks)."""
        return self._request("PATCH", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}", {"state": state})

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 300.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")
            if run["state"] in ("success", "failed"):
                return run
            time.sleep(1)
        raise TimeoutError(f"{dag_id} run {run_id} did not finish within {timeout:.0f}s")

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str]:
        tis = self.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]
        return {ti["task_id"]: ti["state"] for ti in tis}

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value"):
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}?deserialize=true"
        return self.get(path)["value"]

    # --- human-in-the-loop: the "Required Actions" a person answers in the UI -------------------
    @staticmethod
    def hitl_path(dag_id: str, run_id: str, task_id: str) -> str:
        return f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/-1/hitlDetails"

    def wait_for_prompt(self, dag_id: str, run_id: str, task_id: str, timeout: float = 180.0,
                        settle: float = 5.0) -> dict:
        """The HITL request of a task, once the task waits for input.

        `settle`: Airflow 3.3.2 fails the task when an answer arrives before the executor has
        reported the task's pause (it then sees a "queued" task reported finished); a person
        never answers that fast, a test must wait a moment."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                prompt = self.get(self.hitl_path(dag_id, run_id, task_id))
            except urllib.error.HTTPError as err:
                if err.code != 404:
                    raise
            else:
                if self.task_states(dag_id, run_id).get(task_id) == "awaiting_input":
                    time.sleep(settle)
                    return prompt
            time.sleep(1)
        raise TimeoutError(f"{task_id} never asked (states: {self.task_states(dag_id, run_id)})")

    def answer(self, dag_id: str, run_id: str, task_id: str, option: str, params_input: dict | None = None) -> dict:
        body = {"chosen_options": [option], "params_input": params_input or {}}
        return self._request("PATCH", self.hitl_path(dag_id, run_id, task_id), body)
