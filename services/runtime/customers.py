"""Each service's own view of the compacted `customers.profiles` topic."""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError
from pymongo.asynchronous.collection import AsyncCollection

from schemas.inbound import CustomerProfile
from services.runtime.errors import InputRejected
from services.runtime.records import InboundRecord


async def apply_profile_record(
    customers: AsyncCollection[dict[str, Any]], record: InboundRecord
) -> None:
    """Upsert the profile, or delete it on a tombstone (null value)."""
    if record.key is None:
        raise InputRejected("schema_violation", "profile record without a customer-id key")
    customer_id = record.key.decode("utf-8", "replace")
    if record.value is None:
        await customers.delete_one({"_id": customer_id})
        return
    try:
        profile = CustomerProfile.model_validate(json.loads(record.value.decode("utf-8")))
    except (UnicodeDecodeError, ValueError) as exc:
        code = "schema_violation" if isinstance(exc, ValidationError) else "invalid_json"
        raise InputRejected(code, f"customer profile: {exc}") from exc
    document = profile.model_dump(mode="json")
    document["emails"] = [address.lower() for address in profile.emails]
    document["social_ids"] = [f"{net.lower()}:{uid}" for net, uid in profile.social.items()]
    await customers.replace_one({"_id": customer_id}, document, upsert=True)
