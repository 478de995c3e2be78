"""A small stand-in for the GravityPM production host, for the local stack.

    python dev/prod_host.py --root STATE/host/opt/gravitypm/production --port 8766 [--mongo-port 27017]

Creates (once) a directory tree shaped like the runbook's /opt/gravitypm/production,
keeps appending to logs/*.log like a live app, and answers the runbook's health
endpoints over real HTTP:
  /health        200 while the app runs, 503 while it is stopped
  /health/db     200 if the MongoDB port accepts a TCP connection, else 503
  /health/redis  200 (there is no Redis locally; the endpoint exists so checks hit HTTP)

Service control (what `docker compose stop app / start app / restart logging` do in production;
dev/host_ctl.py is the command the suite runs):
  POST /control/app/stop | /control/app/start    the app stops / resumes serving and logging
  POST /control/logging/restart                  the log writer reopens logs/*.log
The log writer keeps its files open between restarts, like a real logging agent: a rotated file
(renamed away) keeps receiving lines until the restart, which is what logrotate's `create` +
`postrotate` contract relies on.
"""

from __future__ import annotations

import argparse
import json
import socket
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

# Fake secrets: tests grep logs, XCom and Slack for these to prove they never leak.
FAKE_ENV = """\
NODE_ENV=production
MONGODB_URI=mongodb://gravitypm_app:fake-mongo-secret-7f3a@mongo:27017/gravitypm_production
REDIS_URL=redis://:fake-redis-secret-91cc@redis:6379/0
JWT_SECRET=fake-jwt-secret-2d8e4b
OAUTH_CLIENT_SECRET=fake-oauth-secret-5a1f
"""

COMPOSE = """\
services:
  app:
    image: gravitypm/api:1.2.3
    env_file: .env
    ports: ["3000:3000"]
  frontend:
    image: gravitypm/web:1.2.3
  nginx:
    image: nginx:1.27
    volumes: ["./nginx/nginx.conf:/etc/nginx/nginx.conf:ro", "./nginx/conf.d:/etc/nginx/conf.d:ro"]
    ports: ["80:80", "443:443"]
  redis:
    image: redis:7
  logging:
    image: fluent/fluent-bit:3.0
    volumes: ["./logs:/logs"]
"""

NGINX_CONF = """\
worker_processes auto;
events { worker_connections 1024; }
http { include /etc/nginx/conf.d/*.conf; }
"""

NGINX_SITE = """\
server {
    listen 443 ssl;
    server_name api.gravitypm.com;
    location / { proxy_pass http://app:3000; }
}
"""

APP_CONFIG = {"features": {"mfa": True, "sso": "oauth2"}, "rate_limit_per_minute": 600}


def build_tree(root: Path) -> None:
    """Write the host tree once; a second start keeps whatever is there."""
    files = {
        "docker-compose.production.yml": COMPOSE,
        ".env": FAKE_ENV,
        "nginx/nginx.conf": NGINX_CONF,
        "nginx/conf.d/gravitypm.conf": NGINX_SITE,
        "config/app.json": json.dumps(APP_CONFIG, indent=2) + "\n",
        "logs/app.log": "",
        "logs/access.log": "",
        "logs/mongodb.log": "",
        "logs/backup.log": "",
    }
    for i in range(12):
        files[f"uploads/projects/p{i:03d}/spec-{i}.txt"] = f"Project {i} specification\n" * (40 * (i + 1))
    for rel, content in files.items():
        path = root / rel
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
    (root / ".env").chmod(0o600)
    (root / "uploads" / "avatars").mkdir(parents=True, exist_ok=True)
    avatar = root / "uploads" / "avatars" / "u001.png"
    if not avatar.exists():
        avatar.write_bytes(bytes(range(256)) * 64)


class Host:
    """The app's running state and its log writer (open files, reopened on a logging restart)."""

    def __init__(self, logs: Path):
        self.logs = logs
        self.lock = threading.Lock()
        self.app_running = True
        self.restarts = 0
        self.files: dict[str, object] = {}
        self.reopen_logs()

    def reopen_logs(self) -> None:
        with self.lock:
            for f in self.files.values():
                f.close()
            self.files = {name: (self.logs / name).open("a", buffering=1) for name in ("app.log", "access.log")}
            self.restarts += 1

    def write_lines(self, n: int) -> None:
        now = datetime.now(UTC).isoformat()
        with self.lock:
            if not self.app_running:
                return
            level = "ERROR" if n % 50 == 0 else "INFO"
            self.files["app.log"].write(f"{now} {level} request handled id={n} duration_ms={n % 300}\n")
            self.files["access.log"].write(
                f'127.0.0.1 - - [{now}] "GET /api/projects HTTP/1.1" 200 {512 + n % 97}\n'
            )

    def control(self, path: str) -> dict | None:
        if path == "/control/app/stop":
            self.app_running = False
        elif path == "/control/app/start":
            self.app_running = True
        elif path == "/control/logging/restart":
            self.reopen_logs()
        else:
            return None
        return {"app_running": self.app_running, "logging_restarts": self.restarts}


def grow_logs(host: Host, stop: threading.Event, interval: float = 1.0) -> None:
    n = 0
    while not stop.wait(interval):
        n += 1
        host.write_lines(n)


def port_open(port: int | None) -> bool:
    if not port:
        return False
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def make_handler(host: Host, mongo_port: int | None):
    class Health(BaseHTTPRequestHandler):
        def log_message(self, fmt, *args):
            pass

        def do_POST(self):
            body = host.control(self.path)
            self._reply(404 if body is None else 200, body or {"status": "not found"})

        def do_GET(self):
            if self.path == "/health":
                up = host.app_running
                status, body = (200 if up else 503), {"status": "ok" if up else "stopped"}
            elif self.path == "/health/db":
                up = port_open(mongo_port)
                status, body = (200 if up else 503), {"status": "ok" if up else "unavailable"}
            elif self.path == "/health/redis":
                status, body = 200, {"status": "ok"}
            else:
                status, body = 404, {"status": "not found"}
            self._reply(status, body)

        def _reply(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Health


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mongo-port", type=int)
    parser.add_argument("--log-interval", type=float, default=1.0)
    args = parser.parse_args()

    build_tree(args.root)
    stop = threading.Event()
    host = Host(args.root / "logs")
    threading.Thread(target=grow_logs, args=(host, stop, args.log_interval), daemon=True).start()
    server = ThreadingHTTPServer((args.host, args.port), make_handler(host, args.mongo_port))
    server.daemon_threads = True
    print(f"READY http://{args.host}:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        server.server_close()


if __name__ == "__main__":
    main()
