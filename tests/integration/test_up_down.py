"""`make up` / `make down` as outside acceptance tests use them: background services that
answer /readyz, an endpoints file, and a clean stop."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.request
from pathlib import Path

from tests.support.infra import REPO_ROOT, Infra
from tests.support.ports import free_port_block

SERVICES = ("intake", "triage", "compensation", "followup", "insights")


def _get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status, response.read()


def test_services_start_in_background_write_endpoints_and_stop(
    infra: Infra, namespace: str, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": infra.kafka_bootstrap_servers,
        "MONGODB_URI": infra.mongodb_uri,
        "MONGODB_DATABASE_PREFIX": f"{namespace}up",
        "CONSUMER_GROUP_PREFIX": f"{namespace}up",
        # Its own topics: these services would otherwise answer every complaint other
        # tests sent, minting case numbers that collide with the shared services' ones.
        "TOPIC_PREFIX": f"{namespace}up.",
        "COMPLAINTS_RUN_DIR": str(tmp_path),
        "SERVICE_PORT_BASE": str(free_port_block(len(SERVICES))),
    }
    script = REPO_ROOT / "deploy" / "local" / "services.sh"
    try:
        subprocess.run([str(script), "start"], env=env, check=True, timeout=180)
        endpoints = json.loads((tmp_path / "endpoints.json").read_text())
        assert endpoints["kafka_bootstrap_servers"] == infra.kafka_bootstrap_servers
        assert endpoints["mongodb_uri"] == infra.mongodb_uri
        assert set(endpoints["metrics"]) == set(SERVICES)
        for name in SERVICES:
            status, body = _get(endpoints["metrics"][name])
            assert status == 200 and b"complaints_service_ready" in body
            status, _ = _get(endpoints["metrics"][name].replace("/metrics", "/readyz"))
            assert status == 200
            status, _ = _get(endpoints["metrics"][name].replace("/metrics", "/healthz"))
            assert status == 200
        pids = [int((tmp_path / "services" / f"{name}.pid").read_text()) for name in SERVICES]
    finally:
        subprocess.run([str(script), "stop"], env=env, check=True, timeout=180)
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists(), f"service process {pid} still running"
