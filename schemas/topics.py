"""Kafka topic names. Public ones are fixed by the contract; the partition counts are ours."""

from __future__ import annotations

from dataclasses import dataclass

INBOUND_EMAIL = "complaints.inbound.email"
INBOUND_SOCIAL = "complaints.inbound.social"
INBOUND_APP = "complaints.inbound.app"
CUSTOMER_PROFILES = "customers.profiles"
CASE_ACTIONS = "cases.actions"

CASES_OPENED = "cases.opened"
CASES_TRIAGED = "cases.triaged"
CASES_COMPENSATION = "cases.compensation"
CASES_FOLLOWUPS = "cases.followups"
CASES_RESOLVED = "cases.resolved"
# Systemic issues found across cases, keyed by insight id.
CASES_INSIGHTS = "cases.insights"
NOTIFICATIONS = "notifications.outbound"
CUSTOMER_ERASURES = "customers.erasures"
DLQ = "complaints.dlq"


@dataclass(frozen=True)
class TopicSpec:
    name: str
    compacted: bool = False
    # Its records carry personal data (texts, addresses, recipients, comments): Kafka
    # keeps them only the policy's topic_retention_days (dead letters: dlq_retention_days).
    personal: bool = True


ALL_TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec(INBOUND_EMAIL),
    TopicSpec(INBOUND_SOCIAL),
    TopicSpec(INBOUND_APP),
    # The CRM publishes the latest profile per customer; tombstones delete.
    TopicSpec(CUSTOMER_PROFILES, compacted=True),
    TopicSpec(CASE_ACTIONS),
    TopicSpec(CASES_OPENED),
    TopicSpec(CASES_TRIAGED),
    TopicSpec(CASES_COMPENSATION),
    TopicSpec(CASES_FOLLOWUPS),
    TopicSpec(CASES_RESOLVED),
    TopicSpec(CASES_INSIGHTS),
    TopicSpec(NOTIFICATIONS),
    # Counts and ids only: the record of who asked to be erased, kept as the broker keeps.
    TopicSpec(CUSTOMER_ERASURES, personal=False),
    TopicSpec(DLQ),
)
