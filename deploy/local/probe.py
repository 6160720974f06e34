"""Readiness probes for the local infrastructure: ask the server, never sleep-and-hope.

    probe.py kafka HOST:PORT [--timeout S] [--pid PID] [--env-file FILE]
    probe.py mongo URI [--timeout S] [--pid PID]

Exits 0 once the server answers a real request (Kafka: a metadata request;
MongoDB wire: ``ping``) and prints what answered; exits 1 on timeout or when
the watched process died. ``--env-file`` holds the client settings of a secured server
(KAFKA_SECURITY_PROTOCOL, …, MONGODB_URI, MONGODB_TLS_CA_FILE), read as the services
read them.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def _client_settings(env_file: Path | None, **values: str) -> Any:
    from services.runtime.settings import ConnectionSettings

    if env_file is not None:
        for line in env_file.read_text(encoding="utf-8").splitlines():
            name, sep, value = line.partition("=")
            if sep and not name.startswith("#"):
                values[name.strip().lower()] = value.strip().strip("'")
    return ConnectionSettings(**values)


def _process_gone(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


async def _kafka_once(bootstrap: str, env_file: Path | None) -> str:
    from aiokafka.admin import AIOKafkaAdminClient

    from services.runtime.connections import kafka_client_kwargs

    # This machine's broker: plaintext unless its env file says otherwise, whatever the
    # shell's KAFKA_* variables (meant for another broker) say.
    settings = _client_settings(
        env_file, kafka_bootstrap_servers=bootstrap, kafka_security_protocol="PLAINTEXT"
    )
    admin = AIOKafkaAdminClient(**kafka_client_kwargs(settings), request_timeout_ms=3000)
    try:
        await admin.start()
        cluster = await admin.describe_cluster()
        return f"cluster {cluster['cluster_id']} with {len(cluster['brokers'])} broker(s)"
    finally:
        await admin.close()


async def _mongo_once(uri: str, env_file: Path | None) -> str:
    from services.runtime.connections import mongo_client

    values = {"mongodb_uri": uri}
    settings = _client_settings(env_file, **values)
    client = mongo_client(settings, serverSelectionTimeoutMS=2000)
    try:
        await client.admin.command("ping")
        info = await client.admin.command("buildInfo")
        return f"wire version {info.get('version')}"
    finally:
        await client.close()


async def wait(
    kind: str, target: str, timeout: float, pid: int | None, env_file: Path | None = None
) -> int:
    probe = _kafka_once if kind == "kafka" else _mongo_once
    deadline = time.monotonic() + timeout
    last_error = ""
    while time.monotonic() < deadline:
        if _process_gone(pid):
            print(f"{kind} process {pid} exited before it became ready", file=sys.stderr)
            return 1
        try:
            answer = await asyncio.wait_for(probe(target, env_file), timeout=10)
        except Exception as exc:  # any failure means "not ready yet"
            last_error = f"{type(exc).__name__}: {exc}"
            await asyncio.sleep(0.5)  # poll interval between real requests
            continue
        print(f"{kind} ready at {target}: {answer}")
        return 0
    print(f"{kind} at {target} not ready after {timeout:.0f}s: {last_error}", file=sys.stderr)
    return 1


def main() -> int:
    # aiokafka logs every refused connection while the broker boots; that is expected here.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=["kafka", "mongo"])
    parser.add_argument("target")
    parser.add_argument("--timeout", type=float, default=60)
    parser.add_argument("--pid", type=int)
    parser.add_argument("--env-file", type=Path)
    args = parser.parse_args()
    return asyncio.run(wait(args.kind, args.target, args.timeout, args.pid, args.env_file))


if __name__ == "__main__":
    sys.exit(main())
