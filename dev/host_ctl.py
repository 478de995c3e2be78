"""The local stack's stand-in for `docker compose stop app / start app / restart logging`.

    python dev/host_ctl.py --url http://127.0.0.1:PORT stop app|start app|restart logging

Posts to the dev production host's control endpoint (dev/prod_host.py) and exits non-zero
with the reason on stderr when the host refuses or is unreachable, like a failing compose call.
"""

from __future__ import annotations

import argparse
import sys
import urllib.error
import urllib.request

VERBS = {("stop", "app"), ("start", "app"), ("restart", "logging")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="the dev host's base URL")
    parser.add_argument("verb", choices=["stop", "start", "restart"])
    parser.add_argument("service", choices=["app", "logging"])
    args = parser.parse_args()
    if (args.verb, args.service) not in VERBS:
        print(f"host_ctl: cannot {args.verb} {args.service}", file=sys.stderr)
        return 2
    request = urllib.request.Request(f"{args.url}/control/{args.service}/{args.verb}", method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            print(reply.read().decode())
    except (urllib.error.URLError, OSError) as err:
        print(f"host_ctl: {args.verb} {args.service} failed: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
