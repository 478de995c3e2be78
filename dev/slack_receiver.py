"""Local stand-in for Slack incoming webhooks: records every POST, shows them back.

    python dev/slack_receiver.py --port 8765 --log STATE/slack/messages.jsonl

POST /services/<T>/<B>/<token>  records the JSON body (a line in --log) and answers "ok".
GET  /messages                  every recorded message as JSON (tests read this).
GET  /                          a tiny HTML page of the messages, newest first.
DELETE /messages                forget everything (tests isolate themselves with it).
"""

from __future__ import annotations

import argparse
import html
import json
import sys
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class Receiver(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address, log_path: Path):
        super().__init__(address, Handler)
        self.log_path = log_path
        self.lock = threading.Lock()
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_path.touch()

    def record(self, payload) -> None:
        # The webhook token lives in the URL path: never store it.
        line = json.dumps({"received_at": datetime.now(UTC).isoformat(), "payload": payload})
        with self.lock, self.log_path.open("a") as log:
            log.write(line + "\n")

    def messages(self) -> list[dict]:
        with self.lock:
            return [json.loads(line) for line in self.log_path.read_text().splitlines() if line]

    def clear(self) -> None:
        with self.lock:
            self.log_path.write_text("")


class Handler(BaseHTTPRequestHandler):
    server: Receiver

    def log_message(self, fmt, *args):  # keep stderr quiet; the log file is the record
        pass

    def _reply(self, status: int, body: str, content_type: str = "text/plain") -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        if not self.path.startswith("/services/"):
            return self._reply(404, "no_service")
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            payload = json.loads(body)
        except ValueError:
            return self._reply(400, "invalid_payload")
        if not isinstance(payload, dict) or not (payload.get("text") or payload.get("blocks")):
            return self._reply(400, "no_text")  # what Slack answers for an empty message
        self.server.record(payload)
        self._reply(200, "ok")

    def do_GET(self):
        if self.path == "/messages":
            return self._reply(200, json.dumps(self.server.messages()), "application/json")
        if self.path == "/":
            items = "".join(
                f"<li><small>{html.escape(m['received_at'])}</small><pre>"
                f"{html.escape(m['payload'].get('text') or json.dumps(m['payload']))}</pre></li>"
                for m in reversed(self.server.messages())
            )
            return self._reply(200, f"<h1>GravityPM Ops: Slack messages</h1><ul>{items}</ul>", "text/html")
        self._reply(404, "not found")

    def do_DELETE(self):
        if self.path != "/messages":
            return self._reply(404, "not found")
        self.server.clear()
        self._reply(200, "ok")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log", type=Path, required=True)
    args = parser.parse_args()
    server = Receiver((args.host, args.port), args.log)
    print(f"READY http://{args.host}:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    sys.exit(0)


if __name__ == "__main__":
    main()
