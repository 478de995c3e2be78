import json
import logging
import socket
import threading
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from gravitypm_ops.airflow.alerts import Severity
from gravitypm_ops.redact import scrub


@pytest.mark.parametrize(
    "text, secret",
    [
        ("connect failed: mongodb://backup:s3cr3t@db:27017/admin", "s3cr3t"),
        ("error for https://user:pa55@minio:9000/bucket", "pa55"),
        ("bad config password=hunter2 retry", "hunter2"),
        ("aws_secret_access_key: 'AbCdEf123'", "AbCdEf123"),
        ("POST https://hooks.slack.com/services/T0123/B0456/XyZtoken789 failed", "XyZtoken789"),
    ],
)
def test_scrub_removes_credentials(text, secret):
    cleaned = scrub(text)
    assert secret not in cleaned
    assert "***" in cleaned


def test_scrub_keeps_ordinary_text():
    text = "disk /opt/gravitypm has 12% free; https://api.gravitypm.com/health answered 503"
    assert scrub(text) == text


def test_severities_are_the_runbooks():
    assert [s.value for s in Severity] == ["Critical", "Warning", "Info"]


# --- delivery failures never leak the webhook token (issue 14, item 3) ------------------------

TOKEN = "T0FAIL/B0FAIL/sEcReTwEbHoOkToKeN42"


class FailingSlack(ThreadingHTTPServer):
    """A Slack webhook endpoint that fails every post: with `status`, or by dropping the connection."""

    daemon_threads = True

    def __init__(self, status: int | None):
        self.status, self.posts = status, 0

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                server = self.server
                server.posts += 1
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if server.status is None:  # dropped: no answer at all
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                body = b"rate_limited" if server.status == 429 else b"internal_error"
                self.send_response(server.status)
                if server.status == 429:
                    self.send_header("Retry-After", "0")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        super().__init__(("127.0.0.1", 0), Handler)

    def __enter__(self):
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.shutdown()
        self.server_close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("failure", ["connection refused", "connection dropped", "500", "429 rate limited"])
def test_an_undeliverable_alert_never_shows_the_webhook_token(failure, monkeypatch, caplog):
    from gravitypm_ops.airflow.alerts import SLACK_LOG, SlackDeliveryError, send_slack

    status = {"connection refused": None, "connection dropped": None, "500": 500, "429 rate limited": 429}[failure]
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger=SLACK_LOG.name)  # slack_sdk logs the URL + headers at DEBUG
    server = FailingSlack(status)
    port = _free_port() if failure == "connection refused" else server.server_address[1]
    if failure == "connection refused":
        server.server_close()
    conn = {"conn_type": "slackwebhook", "host": f"http://127.0.0.1:{port}/services", "password": TOKEN}
    monkeypatch.setenv("AIRFLOW_CONN_GRAVITYPM_SLACK", json.dumps(conn))

    if failure == "connection refused":
        with pytest.raises(SlackDeliveryError) as raised:
            send_slack("backup failed")
    else:
        with server, pytest.raises(SlackDeliveryError) as raised:
            send_slack("backup failed")
        assert server.posts == 2, "slack_sdk's retry handler should have tried once more"

    secret = TOKEN.rsplit("/", 1)[1]
    shown = "".join(traceback.format_exception(raised.value))
    assert secret not in shown and "T0FAIL" not in shown
    assert "gravitypm_slack" in str(raised.value)
    logged = caplog.text + "".join(
        "".join(traceback.format_exception(*r.exc_info)) for r in caplog.records if r.exc_info
    )
    assert secret not in logged
    if failure.startswith("connection"):  # the retry line that used to carry the URL is still there, scrubbed
        assert "Going to retry the same request: POST" in logged and "/services/***" in logged


def test_the_scrub_filter_covers_arguments_tracebacks_and_stacks():
    from gravitypm_ops.airflow.alerts import ScrubFilter

    try:
        raise OSError(f"POST https://hooks.slack.com/services/{TOKEN} failed")
    except OSError as err:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "url %s", (f"/services/{TOKEN}",), (
            type(err), err, err.__traceback__))
    record.stack_info = f"stack /services/{TOKEN}"
    assert ScrubFilter().filter(record)
    text = logging.Formatter().format(record)
    assert "sEcReTwEbHoOkToKeN42" not in text and "OSError" in text and "/services/***" in text
