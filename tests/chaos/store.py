"""What the verdict reads from the services' stores (a test tool: full reads are fine here)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import AsyncMongoClient

PREFIX = "complaints"
# Every collection whose documents keep pending events in an `outbox`.
OUTBOX_COLLECTIONS = (("intake", "cases"), ("triage", "cases"), ("compensation", "cases"),
                      ("followup", "cases"), ("followup", "followups"),
                      ("triage", "insights"))  # fmt: skip


def _client(uri: str) -> AsyncMongoClient[dict[str, Any]]:
    return AsyncMongoClient(uri, tz_aware=True, serverSelectionTimeoutMS=10000)


async def snapshot(uri: str) -> dict[str, Any]:
    client = _client(uri)
    try:
        intake, compensation = client[f"{PREFIX}_intake"], client[f"{PREFIX}_compensation"]
        sources = {doc["_id"]: doc async for doc in intake["sources"].find({})}
        budgets = await compensation["budgets"].find({}).to_list(None)
        charges = await compensation["budget_charges"].find({}).to_list(None)
        goodwill = await compensation["goodwill"].find({}).to_list(None)
        outboxes: list[tuple[str, Any, int]] = []
        for service, collection in OUTBOX_COLLECTIONS:
            found = client[f"{PREFIX}_{service}"][collection].find(
                {"outbox": {"$exists": True}}, {"outbox": 1}
            )
            async for doc in found:
                if doc.get("outbox"):
                    outboxes.append((f"{service}.{collection}", doc["_id"], len(doc["outbox"])))
        return {"intake_sources": sources, "budgets": budgets, "budget_charges": charges,
                "goodwill": goodwill,
                "outboxes": outboxes}  # fmt: skip
    finally:
        await client.close()


async def due_work(uri: str, now: datetime) -> int:
    """Scheduled work due by ``now`` and not yet done (follow-ups, expiries, SLA alarms),
    or stored by a pass and not yet published or settled: the system has not settled while
    any is left (a lease may still hold it)."""
    client = _client(uri)
    due, marked = {"$lte": now}, {"$exists": True}
    followups = client[f"{PREFIX}_followup"]["followups"]
    offers = client[f"{PREFIX}_compensation"]["cases"]
    alarms = client[f"{PREFIX}_triage"]["cases"]
    try:
        return (
            await followups.count_documents(
                {"$or": [{"next_at": due}, {"unpublished_since": marked}]}
            )
            + await offers.count_documents(
                {"$or": [{"offer_expires_at": due}, {"unsettled": marked}]}
            )
            + await alarms.count_documents(
                {"$or": [{"next_alarm_at": due}, {"unpublished_since": marked}]}
            )
        )
    finally:
        await client.close()
