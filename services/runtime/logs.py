"""JSON-lines logging. Only ids travel in logs: no names, addresses or phone numbers."""

from __future__ import annotations

import atexit
import json
import logging
import re
import sys
import time
from datetime import UTC, datetime
from typing import Any

# Fields that handlers may attach with `extra=`; everything else is dropped.
_CORRELATION_FIELDS = (
    "service", "case_number", "event_id", "event_type", "topic", "partition", "offset", "reason",
    "policy_version", "channel",
)  # fmt: skip

# Last line of defence in case a message string carries personal data anyway.
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")
_PHONE = re.compile(r"\+?\d[\d\s-]{7,}\d")


def scrub(text: str) -> str:
    return _PHONE.sub("<phone>", _EMAIL.sub("<email>", text))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": scrub(record.getMessage()),
        }
        for field in _CORRELATION_FIELDS:
            value = record.__dict__.get(field)
            if value is not None:
                entry[field] = value
        if record.exc_info:
            entry["exc"] = scrub(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)


# Libraries that log whole records or documents below WARNING (aiokafka's producer logs
# values at DEBUG, PyMongo's command logger logs documents): never below WARNING, whatever
# LOG_LEVEL says, because those payloads carry customers' names, addresses and phones.
PAYLOAD_LOGGERS = ("aiokafka", "pymongo", "kafka")


def quiet_payload_loggers() -> None:
    for name in PAYLOAD_LOGGERS:
        logger = logging.getLogger(name)
        if logger.getEffectiveLevel() < logging.WARNING or logger.level == logging.NOTSET:
            logger.setLevel(logging.WARNING)


class BatchedStreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes lines as they come but flushes at most every FLUSH_SECONDS, and at once for
    warnings and errors: a flush per line (a system call per published event) was a
    visible share of a busy service's CPU. A kill -9 loses at most that much INFO."""

    FLUSH_SECONDS = 0.1

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._flushed_at = 0.0

    def flush(self) -> None:
        now = time.monotonic()
        if now - self._flushed_at >= self.FLUSH_SECONDS:
            self._flushed_at = now
            super().flush()

    def emit(self, record: logging.LogRecord) -> None:
        super().emit(record)
        if record.levelno >= logging.WARNING:
            self._flushed_at = 0.0
            self.flush()


def configure_logging(level: str = "INFO") -> None:
    # A buffered writer of its own on fd 2: the handler decides when to flush.
    stream = open(  # noqa: SIM115  (lives as long as the process)
        sys.stderr.fileno(), "w", buffering=1 << 16, encoding="utf-8", closefd=False
    )
    handler = BatchedStreamHandler(stream)
    atexit.register(logging.shutdown)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    quiet_payload_loggers()
    # aiokafka reports every reconnect attempt at ERROR; readiness covers that.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
