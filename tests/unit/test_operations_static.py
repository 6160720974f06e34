"""Dashboards, alert rules and Kubernetes manifests against what the services really do."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.runtime.settings import SchedulerSettings, ServiceSettings
from tests.support.exported import built_kits, exported_names, metrics_in

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "complaints-overview.json"
RULES = DEPLOY / "prometheus" / "rules" / "complaints.rules.yml"
SERVICES = ("intake", "triage", "compensation", "followup", "insights")
# The module each runs (triage's insights worker lives in the triage package).
MODULES = {name: f"services.{name}" for name in SERVICES} | {"insights": "services.triage.insights"}
ALL_EXPORTED = set().union(*exported_names().values()) | {"up"}


def panels() -> list[dict[str, Any]]:
    return [p for p in json.loads(DASHBOARD.read_text())["panels"] if p["type"] != "row"]


def test_every_dashboard_query_names_metrics_the_services_export() -> None:
    found = panels()
    assert len(found) >= 15
    assert len({p["id"] for p in found}) == len(found)
    for panel in found:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "prometheus"
            named = metrics_in(target["expr"])
            assert named, f"{panel['title']}: no metric in {target['expr']!r}"
            assert named <= ALL_EXPORTED, f"{panel['title']}: {named - ALL_EXPORTED}"


def test_the_dashboard_covers_every_area_ops_asked_for() -> None:
    queried = set().union(*(metrics_in(t["expr"]) for p in panels() for t in p["targets"]))
    for needed in ("complaints_received_total", "complaints_triaged_total",
                   "complaints_receipt_to_triage_seconds_bucket", "complaints_open_deadlines",
                   "complaints_sla_warnings_total", "complaints_offers_total",
                   "complaints_goodwill_given_total", "complaints_goodwill_budget_remaining",
                   "complaints_followups_total", "complaints_survey_answers_total",
                   "complaints_reopened_total", "complaints_consumer_lag_records",
                   "complaints_dlq_records_total", "complaints_store_operation_seconds_bucket",
                   "complaints_insights_open", "complaints_insight_cases_total"):  # fmt: skip
        assert needed in queried, needed


def test_every_alert_rule_names_exported_metrics() -> None:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    assert len(rules) >= 8
    for rule in rules:
        named = metrics_in(rule["expr"])
        assert named and named <= ALL_EXPORTED, (rule["alert"], named - ALL_EXPORTED)
        assert rule["labels"]["severity"] in {"page", "ticket"}
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]


@pytest.mark.parametrize("command", [
    ["promtool", "check", "rules", str(RULES)],
    ["promtool", "test", "rules", str(RULES.with_name("complaints.rules.test.yml"))],
])  # fmt: skip
def test_promtool_accepts_the_rules_and_their_unit_tests(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def manifests() -> dict[str, list[dict[str, Any]]]:
    return {name: list(yaml.safe_load_all((DEPLOY / "k8s" / f"{name}.yaml").read_text()))
            for name in (*SERVICES, "config")}  # fmt: skip


def test_kubernetes_deployments_probe_the_real_endpoints_with_resources() -> None:
    found = manifests()
    config = {d["kind"]: d for d in found["config"] if d["kind"] != "Secret"}
    secrets = {d["metadata"]["name"]: d for d in found["config"] if d["kind"] == "Secret"}
    settable = {field.upper() for field in
                (*ServiceSettings.model_fields, *SchedulerSettings.model_fields)}  # fmt: skip
    assert set(config["ConfigMap"]["data"]) <= settable
    assert set(secrets["complaints-store"]["stringData"]) <= settable
    for name in SERVICES:
        docs = {d["kind"]: d for d in found[name]}
        deployment = docs["Deployment"]
        labels = deployment["spec"]["selector"]["matchLabels"]
        assert deployment["spec"]["template"]["metadata"]["labels"] == labels
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert container["command"] == ["python", "-m", MODULES[name]]
        env = {e["name"]: e["value"] for e in container["env"]}
        assert set(env) <= settable
        port = int(env["HTTP_PORT"])
        assert {"name": "http", "containerPort": port} in container["ports"]
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
        assert container["resources"]["requests"]["cpu"]
        assert container["resources"]["requests"]["memory"]
        assert container["resources"]["limits"]["memory"]
        # Longer than FastStream's graceful timeout, so SIGTERM finishes in-flight work.
        assert deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > 30
        assert docs["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"] == labels
        budget = docs["PodDisruptionBudget"]["spec"]
        # The single insights worker may be drained (detection waits); the services not.
        assert budget.get("minAvailable", 0) >= 1 or (
            budget == {"maxUnavailable": 1, "selector": budget["selector"]} and name == "insights"
        )
        assert docs["Service"]["spec"]["selector"] == labels
        assert {"secretRef": {"name": "complaints-store"}} in container["envFrom"]


def test_kubernetes_takes_the_kafka_credentials_from_the_secret() -> None:
    """The *_FILE settings name files of the mounted Secret; KEDA uses the same Secret."""
    found = manifests()
    config = {d["kind"]: d for d in found["config"] if d["kind"] != "Secret"}
    secrets = {d["metadata"]["name"]: d for d in found["config"] if d["kind"] == "Secret"}
    data = config["ConfigMap"]["data"]
    assert data["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert data["KAFKA_SASL_MECHANISM"].startswith("SCRAM-")
    assert "KAFKA_SASL_PASSWORD" not in data and "KAFKA_SASL_USERNAME" not in data
    kafka_secret = secrets["complaints-kafka"]["stringData"]
    auth = config["TriggerAuthentication"]["spec"]["secretTargetRef"]
    assert {(r["name"], r["key"]) for r in auth} <= {("complaints-kafka", k) for k in kafka_secret}
    assert {r["parameter"] for r in auth} >= {"sasl", "username", "password", "tls", "ca"}
    for name in SERVICES:
        docs = {d["kind"]: d for d in found[name]}
        pod = docs["Deployment"]["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        mounted = {}
        for mount in container["volumeMounts"]:
            (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
            assert volume["secret"]["secretName"] == "complaints-kafka"
            for item in volume["secret"]["items"]:
                assert item["key"] in kafka_secret
                mounted[f"{mount['mountPath']}/{item['path']}"] = item["key"]
        for setting in ("KAFKA_SASL_USERNAME_FILE", "KAFKA_SASL_PASSWORD_FILE",
                        "KAFKA_SSL_CA_FILE"):  # fmt: skip
            assert data[setting] in mounted, (name, setting)
        for trigger in docs["ScaledObject"]["spec"]["triggers"]:
            assert trigger["authenticationRef"] == {"name": "complaints-kafka"}, name


def test_keda_scales_each_service_on_the_lag_of_the_groups_it_really_uses() -> None:
    found = manifests()
    partitions = int(
        {d["kind"]: d for d in found["config"]}["ConfigMap"]["data"]["TOPIC_PARTITIONS"]
    )
    for name, kit in built_kits():
        scaled = {d["kind"]: d for d in found[name]}["ScaledObject"]
        assert scaled["spec"]["scaleTargetRef"]["name"] == name
        assert scaled["spec"]["minReplicaCount"] >= 1  # its schedulers must keep running
        assert scaled["spec"]["maxReplicaCount"] <= partitions  # more would sit idle
        triggers = {(t["metadata"]["topic"], t["metadata"]["consumerGroup"])
                    for t in scaled["spec"]["triggers"] if t["type"] == "kafka"}  # fmt: skip
        assert triggers == set(kit.lag.subscriptions), name
