"""A deployment on a secured Kafka and store, as managed services run them: the walking
skeleton through a SASL_SSL listener (SCRAM-SHA-512, a CA generated at start) and a store
with TLS and SCRAM users; wrong credentials give a service that stays up, answers /readyz
with 503 and logs the cause, never the secret."""

from __future__ import annotations

import asyncio
import json
import logging
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.errors import OperationFailure

from services.runtime.connections import diagnose_kafka
from services.runtime.logs import JsonFormatter
from tests.support.infra import TEST_RUN_DIR, Infra, start_secure_local
from tests.support.isolated import Isolated
from tests.support.ports import free_port_block
from tests.support.served import served
from tests.support.system import FakeClock
from tests.support.wait import eventually

WRONG_PASSWORD = "not-the-password-4711"


@pytest.fixture(scope="module")
def secure() -> Iterator[Infra]:
    base = free_port_block(3)  # broker, its controller, the store
    with ExitStack() as stack:
        yield start_secure_local(stack, TEST_RUN_DIR / "secure", base, base + 2)


def _get(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read())


async def http_get(url: str) -> tuple[int, dict[str, Any]]:
    """GET ``url`` off the event loop (the service answering it runs on this loop)."""
    return await asyncio.to_thread(_get, url)


def _get_text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


async def metrics_text(url: str) -> str:
    return await asyncio.to_thread(_get_text, f"{url}/metrics")


async def test_the_sample_flows_through_sasl_ssl_and_an_authenticated_store(
    secure: Infra, samples: Path
) -> None:
    # The listener is really secured: a plaintext client is turned away, and so is a
    # store client without credentials.
    assert await diagnose_kafka({"bootstrap_servers": secure.kafka_bootstrap_servers}, 5)
    anonymous: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        secure.mongodb_uri.replace(secure.mongodb_uri.split("//")[1].split("@")[0] + "@", ""),
        tlsCAFile=secure.service_settings["mongodb_tls_ca_file"], serverSelectionTimeoutMS=5000,
    )  # fmt: skip
    with pytest.raises(OperationFailure):
        await anonymous["complaints_intake"]["cases"].find_one({})
    await anonymous.close()

    clock = FakeClock()
    names = ("intake", "triage", "compensation", "followup")
    async with Isolated(secure, "secure", clock, names) as system:
        raw = (samples / "email-big5-cracked-teapot.eml").read_bytes()
        await system.send("complaints.inbound.email", raw)
        (opened,) = await system.reader.wait_for(
            lambda s: (
                s.type == "complaint.case.opened"
                and s.data.get("source_ref") == "<20261123091247.4471@mail.example.net>"
            )
        )
        case = opened.data["case_number"]
        (triaged,) = await system.reader.wait_for(
            lambda s: s.type == "complaint.case.triaged" and s.data["case_number"] == case
        )
        assert triaged.data["category"] == "product_defect"
        await system.reader.wait_for(
            lambda s: s.type == "complaint.compensation.proposed" and s.data["case_number"] == case
        )
        await system.upstream.send_json(
            system.prefix + "cases.actions",
            {"action_id": f"resolve-{uuid.uuid4().hex}", "case_number": case, "type": "resolve",
             "actor": "agent-7", "at": "2026-11-23T16:00:00+08:00",
             "resolution": {"summary": "replacement shipped", "root_cause": "one_off"}},
            key=case,
        )  # fmt: skip
        (resolved,) = await system.reader.wait_for(
            lambda s: s.type == "complaint.case.resolved" and s.data["case_number"] == case
        )
        assert resolved.data["followup_due_at"] == "2026-11-26T16:00:00+08:00"
        for app in system.apps.values():
            assert app.kit.connected  # type: ignore[attr-defined]


async def test_a_wrong_kafka_password_gives_not_ready_and_names_the_cause(
    secure: Infra, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="services.runtime.kit")
    password_file = Path(secure.service_settings["kafka_sasl_password_file"])
    right_password = password_file.read_text().strip()  # noqa: ASYNC240 (a few bytes, once)
    wrong = Infra(**{**secure.__dict__, "service_settings": {
        **secure.service_settings, "kafka_sasl_password_file": None,
        "kafka_sasl_password": WRONG_PASSWORD,
    }})  # fmt: skip
    port = free_port_block(1)
    async with served(wrong, f"wrong{uuid.uuid4().hex[:6]}", FakeClock(), "wrong.", port,
                      names=("intake",)) as urls:  # fmt: skip
        url = urls["intake"]

        async def refused_with_reason() -> bool:
            status, body = await http_get(f"{url}/readyz")
            return status == 503 and "authentication failed" in body.get("reason", "")

        await eventually(refused_with_reason, 60, "/readyz to answer 503 with the cause")
        _, body = await http_get(f"{url}/readyz")
        assert "complaints" in body["reason"] and "SCRAM-SHA-512" in body["reason"]
        assert (await http_get(f"{url}/healthz"))[0] == 200  # alive: no crash, no restart loop
        lines = [JsonFormatter().format(r) for r in caplog.records if r.levelno >= logging.ERROR]
        assert any("cannot start" in line and "authentication failed" in line for line in lines)
        exposed = await metrics_text(url)
        assert 'complaints_service_ready{service="intake"} 0.0' in exposed
        for text in (*lines, json.dumps(body), exposed):
            assert WRONG_PASSWORD not in text and right_password not in text


async def test_a_wrong_store_password_gives_not_ready_and_names_the_store(
    secure: Infra, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="services.runtime.kit")
    user_and_password = secure.mongodb_uri.split("//")[1].split("@")[0]
    right_password = user_and_password.split(":")[1]
    uri = secure.mongodb_uri.replace(f":{right_password}@", f":{WRONG_PASSWORD}@")
    wrong = Infra(**{**secure.__dict__, "mongodb_uri": uri})
    port = free_port_block(1)
    async with served(wrong, f"wrong{uuid.uuid4().hex[:6]}", FakeClock(), "wrongstore.", port,
                      names=("triage",)) as urls:  # fmt: skip
        url = urls["triage"]

        async def refused_by_the_store() -> bool:
            status, body = await http_get(f"{url}/readyz")
            return status == 503 and body.get("reason", "").startswith("store:")

        await eventually(refused_by_the_store, 60, "/readyz to answer 503 naming the store")
        _, body = await http_get(f"{url}/readyz")
        assert "Authentication failed" in body["reason"]
        lines = [JsonFormatter().format(r) for r in caplog.records if r.levelno >= logging.ERROR]
        assert any("cannot start" in line and "store" in line for line in lines)
        exposed = await metrics_text(url)
        assert 'complaints_service_ready{service="triage"} 0.0' in exposed
        for text in (*lines, json.dumps(body), exposed):
            assert WRONG_PASSWORD not in text and right_password not in text
