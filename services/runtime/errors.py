"""How a failed record is treated: bad input goes to the DLQ, outages are retried."""

from __future__ import annotations

import asyncio

from aiokafka.errors import KafkaError
from pymongo.errors import ConnectionFailure, ExecutionTimeout, WTimeoutError


class InputRejected(Exception):
    """The record can never be processed as it is; it belongs in the DLQ."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        # `code` is a short fixed vocabulary (metric label); `reason` is the precise text.
        self.code = code
        self.reason = reason


class RetryLater(Exception):
    """Something this record depends on has not arrived yet; redeliver it later."""


class StoreContention(Exception):
    """Other writers kept changing the documents a write needs; try the record again."""


# Failures of the environment, not of the record: the record is redelivered until they pass.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    ConnectionFailure,
    ExecutionTimeout,
    WTimeoutError,
    KafkaError,
    ConnectionError,
    asyncio.TimeoutError,
    StoreContention,
)
