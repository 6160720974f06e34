"""Wait until every service answers /readyz, then write .run/endpoints.json.

endpoints.py --out FILE --kafka BOOTSTRAP [--mongo URI] [--wait S] name=http://host:port ...

The store's URI (MONGODB_URI when --mongo is not given) is written without its password.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from services.runtime.connections import redact_uri


def ready(base_url: str, why: dict[str, str] | None = None) -> bool:
    try:
        with urllib.request.urlopen(f"{base_url}/readyz", timeout=2) as response:  # noqa: S310
            return bool(response.status == 200)
    except urllib.error.HTTPError as refused:  # 503: the service says why
        if why is not None:
            with contextlib.suppress(ValueError):
                why[base_url] = str(json.loads(refused.read()).get("reason", ""))
        return False
    except (urllib.error.URLError, OSError):
        return False


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--kafka", required=True)
    parser.add_argument("--mongo", default=os.environ.get("MONGODB_URI", ""))
    parser.add_argument("--wait", type=float, default=120)
    parser.add_argument("services", nargs="+", help="name=base_url")
    args = parser.parse_args()
    services = dict(item.split("=", 1) for item in args.services)
    deadline = time.monotonic() + args.wait
    pending = set(services)
    why: dict[str, str] = {}
    while pending and time.monotonic() < deadline:
        pending = {name for name in pending if not ready(services[name], why)}
        if pending:
            time.sleep(0.3)  # poll interval between real /readyz requests
    if pending:
        print(f"not ready after {args.wait:.0f}s: {sorted(pending)}", file=sys.stderr)
        for name in sorted(pending):
            if why.get(services[name]):
                print(f"  {name}: {why[services[name]]}", file=sys.stderr)
        return 1
    endpoints = {
        "kafka_bootstrap_servers": args.kafka,
        "mongodb_uri": redact_uri(args.mongo),
        "metrics": {name: f"{url}/metrics" for name, url in services.items()},
        "health": {name: f"{url}/healthz" for name, url in services.items()},
        "ready": {name: f"{url}/readyz" for name, url in services.items()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(endpoints, indent=2) + "\n", encoding="utf-8")
    print(f"all services ready; endpoints in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
