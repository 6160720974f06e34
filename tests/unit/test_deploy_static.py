"""What cannot run here is at least checked: the compose stack and the schema exports."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from schemas import export
from services.runtime.settings import ServiceSettings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
SERVICES = ("intake", "triage", "compensation", "followup")


def compose() -> dict[str, Any]:
    loaded = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def test_compose_services_have_image_env_healthcheck() -> None:
    services = compose()["services"]
    assert {"kafka", "mongodb", "prometheus", "grafana", *SERVICES} <= set(services)
    assert services["mongodb"]["image"].startswith("mongo:8")
    assert "broker,controller" in services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"]
    for name, service in services.items():
        assert service.get("image") or service.get("build"), name
        assert "environment" in service, name
        assert service.get("healthcheck", {}).get("test"), name


def test_compose_ports_are_the_ones_the_services_use() -> None:
    services = compose()["services"]
    for name in SERVICES:
        env = services[name]["environment"]
        port = env["HTTP_PORT"]
        assert any(mapping.endswith(f":{port}") for mapping in services[name]["ports"]), name
        assert f":{port}/readyz" in " ".join(services[name]["healthcheck"]["test"]), name
        assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
        assert env["MONGODB_URI"].startswith("mongodb://mongodb:27017")
        # every variable the compose file sets is one the settings class reads
        assert {key.lower() for key in env} <= set(ServiceSettings.model_fields), name
    assert (
        "PLAINTEXT://kafka:9092" in services["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    )


def test_committed_schema_exports_are_fresh() -> None:
    stale = [
        str(path)
        for path, text in export.expected().items()
        if not path.exists() or path.read_text(encoding="utf-8") != text
    ]
    assert stale == [], "run `make schemas`"
