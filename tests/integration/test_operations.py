"""What ops see: every service's /metrics after the sample flow (and days of it, on an
injected clock), the dashboard's queries against what is really exported, and a real
Prometheus server scraping the four services with the alert rules loaded."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import re
import sys
import urllib.request
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from services.runtime.metrics import STORE_LISTENERS
from tests.support.infra import REPO_ROOT, Infra
from tests.support.kafka import OUTBOUND_TOPICS, EventReader, Upstream
from tests.support.ports import free_port_block
from tests.support.query_plans import QueryRecorder, full_scans
from tests.support.served import ORDER, served
from tests.support.system import FakeClock
from tests.support.wait import eventually

# Monday 10:00 in Taipei; the 18 days the test lets pass stay in one budget month.
T0 = datetime(2026, 11, 2, 2, 0, tzinfo=UTC)
DASHBOARD = REPO_ROOT / "deploy" / "grafana" / "dashboards" / "complaints-overview.json"
METRIC = re.compile(r"\b(?:complaints|faststream)_[a-z0-9_]+\b")
Samples = dict[str, list[tuple[dict[str, str], float]]]
DECLARED = "__declared__"
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}


def _feed_module() -> Any:
    spec = importlib.util.spec_from_file_location(
        "feed_samples", REPO_ROOT / "deploy" / "local" / "feed_samples.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    # Registered before it runs, as importlib's recipe says: its dataclasses look it up.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _get_blocking(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as response:
        return bytes(response.read())


async def _get(url: str) -> bytes:
    # The services answer on this very event loop: never block it.
    return await asyncio.to_thread(_get_blocking, url)


async def _script(*args: str, env: dict[str, str]) -> None:
    process = await asyncio.create_subprocess_exec(*args, env=env)
    assert await asyncio.wait_for(process.wait(), 120) == 0, args


async def scrape(url: str) -> Samples:
    found: Samples = defaultdict(list)
    for family in text_string_to_metric_families((await _get(url)).decode()):
        # Declared (HELP/TYPE) even before its first sample, e.g. no redelivery yet.
        found[DECLARED].append(({"name": family.name, "type": family.type}, 0.0))
        for sample in family.samples:
            found[sample.name].append((dict(sample.labels), sample.value))
    return found


def total(samples: Samples, name: str, **labels: str) -> float:
    return sum(
        value for found, value in samples.get(name, [])
        if all(found.get(k) == v for k, v in labels.items())
    )  # fmt: skip


def action(case: str, kind: str, at: datetime, **extra: Any) -> bytes:
    return json.dumps({"action_id": f"{kind}-{uuid.uuid4().hex}", "case_number": case,
                       "type": kind, "actor": "agent-ops", "at": at.isoformat(),
                       **extra}).encode()  # fmt: skip


@pytest.mark.timeout(420)
async def test_metrics_dashboard_and_prometheus_after_the_sample_flow(
    infra: Infra, namespace: str, samples: Path, tmp_path: Path
) -> None:
    feed = _feed_module()
    clock = FakeClock(T0)
    prefix = f"{namespace}.ops{uuid.uuid4().hex[:4]}."
    port_base = free_port_block(len(ORDER))
    reader = EventReader(infra.kafka_bootstrap_servers, tuple(prefix + t for t in OUTBOUND_TOPICS))
    upstream = Upstream(infra.kafka_bootstrap_servers)
    await upstream.start()
    # Every query the services send during the flow, for the query-plan check.
    recorder = QueryRecorder(namespace + "ops")
    STORE_LISTENERS.append(recorder)
    async with served(infra, namespace + "ops", clock, prefix, port_base) as urls:
        STORE_LISTENERS.remove(recorder)
        await reader.start()
        try:
            for key, value in feed.profiles(samples):
                await upstream.send(prefix + "customers.profiles", value, key=key)
            inputs = feed.tagged_samples(samples, uuid.uuid4().hex[:6])
            originals = [s for s in inputs if s.replies_to is None]
            replies = [s for s in inputs if s.replies_to is not None]
            received = {"received-at": T0.isoformat()}
            for sample in originals:
                await upstream.send(prefix + sample.topic, sample.value, headers=received)
            await upstream.send(prefix + "complaints.inbound.app", b"{not json", key=b"bad")
            opened = await reader.wait_for(
                lambda s: s.type == "complaint.case.opened", count=len(originals)
            )
            assert {s.data["source_ref"] for s in opened} == {s.ref for s in originals}
            cases = [s.data["case_number"] for s in opened]
            # A reply goes in once its case is open, as the feeder of `make run` does.
            assert replies, "the samples include a reply threaded to an earlier email"
            for sample in replies:
                await upstream.send(prefix + sample.topic, sample.value, headers=received)
            added = await reader.wait_for(
                lambda s: s.type == "complaint.case.message_added", count=len(replies)
            )
            assert {s.data["source_ref"] for s in added} == {s.ref for s in replies}
            assert {s.data["case_number"] for s in added} <= set(cases)
            for case in cases:
                await reader.wait_for(
                    lambda s, case=case: s.data.get("case_number") == case
                    and s.type in {"complaint.compensation.proposed",
                                   "complaint.compensation.approval_requested"}
                )  # fmt: skip
            clock.advance(timedelta(hours=2))
            # Agents at work: a customer accepts an offer and its case is resolved right
            # behind it, an agent's rude first reply, a case resolved twice (cases[0] is the
            # one the flow reopens; these leave it alone).
            proposed = reader.matching(lambda s: s.type == "complaint.compensation.proposed"
                                       and s.data["case_number"] in cases[1:-1])  # fmt: skip
            assert proposed, "a sample case between the first and the last has an offer"
            chosen = proposed[0].data
            accepted_case = chosen["case_number"]
            await upstream.send(prefix + "cases.actions", action(
                accepted_case, "accept_offer", clock.now, offer_id=chosen["offer_id"],
                option_id=chosen["options"][0]["option_id"]), key=accepted_case.encode())  # fmt: skip
            await upstream.send(prefix + "cases.actions", action(
                cases[-1], "reply", clock.now, text="您應該先看說明書。", first=True),
                key=cases[-1].encode())  # fmt: skip
            for case in [*cases, cases[-1]]:
                await upstream.send(prefix + "cases.actions", action(
                    case, "resolve", clock.now,
                    resolution={"summary": "fixed", "root_cause": "one_off"}),
                    key=case.encode())  # fmt: skip
            resolved = await reader.wait_for(
                lambda s: s.type == "complaint.case.resolved", count=len(cases)
            )
            (with_offer,) = [s for s in resolved if s.data["case_number"] == accepted_case]
            assert with_offer.data["compensation"]["option_id"] == chosen["options"][0]["option_id"]
            await reader.wait_for(lambda s: s.type == "complaint.reply.flagged")
            # Days pass: offers expire (fallback granted), surveys go out.
            clock.advance(timedelta(days=8))
            await reader.wait_for(lambda s: s.type == "complaint.followup.sent", count=len(cases))
            for index, case in enumerate(cases):
                await upstream.send(prefix + "cases.actions", action(
                    case, "survey_response", clock.now, score=1 if index == 0 else 5),
                    key=case.encode())  # fmt: skip
            await reader.wait_for(
                lambda s: s.type == "complaint.followup.answered", count=len(cases)
            )
            await reader.wait_for(lambda s: s.type == "complaint.case.reopened")
            # The reopened case is left alone: its new deadlines pass.
            clock.advance(timedelta(days=10))
            await reader.wait_for(lambda s: s.type == "complaint.case.sla_breached")

            scraped = await _scrape_when_settled(urls, len(cases))
            _check_business_metrics(scraped, len(cases))
            _check_no_case_or_customer_in_labels(scraped, cases)
            _check_dashboard_queries(scraped)
            await _check_prometheus(tmp_path, port_base, urls)
            await _check_every_query_uses_an_index(infra, recorder)
        finally:
            await reader.stop()
            await upstream.stop()


async def _check_every_query_uses_an_index(infra: Infra, recorder: QueryRecorder) -> None:
    """No query of the flow (handlers and background loops) reads a whole collection."""
    shapes, scanning = await full_scans(infra.mongodb_uri, recorder.queries)
    assert shapes >= 20, f"only {shapes} query shapes recorded: is the recorder installed?"
    assert scanning == [], "queries without an index:\n" + "\n".join(scanning)


async def _scrape_when_settled(urls: dict[str, str], cases: int) -> dict[str, Samples]:
    scraped: dict[str, Samples] = {}

    async def ready_and_measured() -> bool:
        for name, url in urls.items():
            await _get(f"{url}/readyz")  # sets complaints_service_ready
            scraped[name] = await scrape(f"{url}/metrics")
        # Lag is measured every few seconds; the budget gauge refreshes every 5 s.
        spent = total(scraped["compensation"], "complaints_goodwill_budget") - total(
            scraped["compensation"], "complaints_goodwill_budget_remaining"
        )
        return all("complaints_consumer_lag_records" in s for s in scraped.values()) and spent > 0

    await eventually(ready_and_measured, 60, "lag and budget gauges on every service")
    return scraped


def _check_business_metrics(scraped: dict[str, Samples], cases: int) -> None:
    intake, triage = scraped["intake"], scraped["triage"]
    compensation, followup = scraped["compensation"], scraped["followup"]
    for service, samples in scraped.items():
        assert total(samples, "complaints_service_ready", service=service) == 1
        assert total(samples, "faststream_received_messages_total") > 0, service
        assert total(samples, "complaints_store_operation_seconds_count") > 0, service
        lags = samples["complaints_consumer_lag_records"]
        assert all(value >= 0 for _, value in lags), service
        assert {labels["partition"] for labels, _ in lags} >= {"0", "1", "2"}
    for channel in ("email", "social", "app"):
        assert total(intake, "complaints_received_total", channel=channel) >= 1, channel
    assert total(intake, "complaints_dlq_records_total", reason="invalid_json") == 1
    assert total(triage, "complaints_triaged_total") >= cases
    assert total(triage, "complaints_receipt_to_triage_seconds_count") == cases
    assert "complaints_open_deadlines" in triage
    assert "complaints_escalations_total" in triage
    assert total(triage, "complaints_sla_warnings_total", kind="breached") >= 1
    assert total(compensation, "complaints_offers_total") >= cases
    assert total(compensation, "complaints_offers_total", outcome="expired") >= 1
    assert total(compensation, "complaints_goodwill_given_total") > 0
    budget = {
        labels["category"]: value for labels, value in compensation["complaints_goodwill_budget"]
    }
    left = {labels["category"]: value
            for labels, value in compensation["complaints_goodwill_budget_remaining"]}  # fmt: skip
    assert set(budget) == set(left) and all(0 <= left[c] <= budget[c] for c in budget)
    assert any(left[c] < budget[c] for c in budget)
    for transition in ("scheduled", "sent", "answered"):
        assert total(followup, "complaints_followups_total", transition=transition) >= cases
    assert "complaints_followups_due" in followup
    assert total(followup, "complaints_survey_answers_total", score="5") == cases - 1
    assert total(followup, "complaints_survey_answers_total", score="1") == 1
    assert total(followup, "complaints_reopened_total") == 1
    assert total(followup, "complaints_resolved_total") == cases
    ignored = {"type": "resolve", "reason": "already_resolved"}
    assert total(followup, "complaints_actions_ignored_total", **ignored) == 1
    assert total(compensation, "complaints_offers_total", outcome="accepted") == 1
    assert total(triage, "complaints_replies_flagged_total", problem="banned_phrase") == 1
    assert total(scraped["triage"], "complaints_events_published_total") > 0


def _check_no_case_or_customer_in_labels(scraped: dict[str, Samples], cases: list[str]) -> None:
    for service, samples in scraped.items():
        for name, found in samples.items():
            if name == DECLARED:
                continue
            for labels, _ in found:
                for value in labels.values():
                    assert not re.search(r"CS\d{8}-\d{4}|@|C-\d", value), (service, name, value)


def _check_dashboard_queries(scraped: dict[str, Samples]) -> None:
    exported = set().union(*(set(samples) for samples in scraped.values()))
    for samples in scraped.values():
        for declared, _ in samples[DECLARED]:
            exported |= {declared["name"] + s for s in SUFFIXES.get(declared["type"], ("",))}
    dashboard = json.loads(DASHBOARD.read_text())
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            missing = set(METRIC.findall(target["expr"])) - exported
            assert not missing, f"{panel['title']}: {missing} not exported after the flow"


async def _check_prometheus(tmp_path: Path, port_base: int, urls: dict[str, str]) -> None:
    port = free_port_block(1)
    env = {**os.environ, "COMPLAINTS_RUN_DIR": str(tmp_path), "PROMETHEUS_PORT": str(port),
           "SERVICE_PORT_BASE": str(port_base)}  # fmt: skip
    script = REPO_ROOT / "deploy" / "local" / "prometheus.sh"
    await _script(str(script), "start", env=env)
    api = f"http://127.0.0.1:{port}/api/v1"
    try:

        async def targets_up() -> bool:
            targets = json.loads(await _get(f"{api}/targets"))["data"]["activeTargets"]
            return len(targets) == len(urls) and all(t["health"] == "up" for t in targets)

        await eventually(targets_up, 60, "Prometheus to scrape every service")
        targets = json.loads(await _get(f"{api}/targets"))["data"]["activeTargets"]
        assert {t["labels"]["service"] for t in targets} == set(urls)
        assert {t["scrapeUrl"].rsplit("/", 1)[0] for t in targets} == set(urls.values())

        rules_file = REPO_ROOT / "deploy" / "prometheus" / "rules" / "complaints.rules.yml"
        expected = len(re.findall(r"^\s+- alert: ", rules_file.read_text(), re.MULTILINE))

        async def rules_evaluated() -> bool:
            groups = json.loads(await _get(f"{api}/rules"))["data"]["groups"]
            rules = [rule for group in groups for rule in group["rules"]]
            return len(rules) == expected and all(rule["health"] == "ok" for rule in rules)

        await eventually(rules_evaluated, 60, "every alert rule loaded and evaluated")
        query = json.loads(await _get(f"{api}/query?query=sum(complaints_received_total)"))
        assert float(query["data"]["result"][0]["value"][1]) >= 3
    finally:
        await _script(str(script), "stop", env=env)
