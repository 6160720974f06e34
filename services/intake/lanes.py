"""Which inbound records intake must handle in order within a batch.

Complaints are independent and are handled side by side, except where one depends on
another: a reply and the message it answers (the thread), a message naming a case, and
the same words from the same sender (the second is a duplicate of the first), and records
the channel gave the same key. Those share a lane, so within a batch they are handled in
the order they arrived, as one by one.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime

from services.intake.complaint import Complaint
from services.runtime.errors import InputRejected
from services.runtime.records import InboundRecord

Parse = Callable[[bytes | None, datetime], Complaint]

# Parsed complaints kept between planning a batch and handling it (e-mail parsing is the
# costliest step of intake); bounded, because a lane cut short leaves entries behind.
CACHE_SIZE = 4096


class ChannelReader:
    """Parses one channel's records once per batch and names their links."""

    def __init__(self, parse: Parse) -> None:
        self.parse = parse
        self._parsed: OrderedDict[str, Complaint] = OrderedDict()

    def links(self, record: InboundRecord) -> tuple[str, ...]:
        try:
            complaint = self.parse(record.value, record.received_at)
        except InputRejected:
            return ()  # handled alone: the handler parses again and dead-letters it
        self._parsed[record.position] = complaint
        while len(self._parsed) > CACHE_SIZE:
            self._parsed.popitem(last=False)
        mentioned = (f"case:{complaint.mentioned_case}",) if complaint.mentioned_case else ()
        # A channel that keys its records (by sender, by thread) gets them in that order.
        keyed = (f"key:{record.key.hex()}",) if record.key is not None else ()
        return (
            *keyed,
            complaint.source_key,
            *complaint.reply_keys(),
            *mentioned,
            f"fingerprint:{complaint.fingerprint()}",
        )

    def complaint(self, record: InboundRecord) -> Complaint:
        parsed = self._parsed.pop(record.position, None)
        return parsed if parsed is not None else self.parse(record.value, record.received_at)
