"""One bad record never holds up the records behind it (found by make chaos --fuzz: a JSON
form with a lone surrogate escape, \\ud800, failed while its batch was being planned, so
the whole batch was retried forever and its partition stood still)."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime

import pytest

from tests.support.infra import Infra
from tests.support.isolated import Isolated
from tests.support.system import FakeClock


@pytest.mark.timeout(120)
async def test_a_lone_surrogate_goes_to_the_dlq_and_the_partition_moves_on(
    infra: Infra, namespace: str
) -> None:
    async with Isolated(infra, namespace, FakeClock(), ("intake",)) as p:
        run = uuid.uuid4().hex[:8]
        now = datetime.now(UTC).isoformat()
        # ensure_ascii: the surrogate travels as the six characters \ud800, valid UTF-8.
        bad = json.dumps({"submission_id": f"bad-{run}", "message": "broken", "subject": "\ud800",
                          "customer_id": "\udfff", "submitted_at": now}).encode()  # fmt: skip
        good = json.dumps({"submission_id": f"good-{run}", "message": "包裹還沒到",
                           "submitted_at": now}).encode()  # fmt: skip
        await p.send("complaints.inbound.app", bad, key=run)
        await p.send("complaints.inbound.app", good, key=run)  # same partition, behind it
        await p.reader.wait_for(lambda s: s.data.get("source_ref") == f"good-{run}", timeout=60)
        (rejected,) = await p.reader.wait_for(
            lambda s: s.type == "complaint.input.rejected"
            and base64.b64decode(s.data["original"]) == bad, timeout=30,
        )  # fmt: skip
        assert rejected.data["reason_code"] == "invalid_json"
