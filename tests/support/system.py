"""The four services in-process against the real servers, with an injectable clock."""

from __future__ import annotations

from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from faststream.asgi import AsgiFastStream

from services.compensation.app import create_app as compensation_app
from services.compensation.settings import CompensationSettings
from services.followup.app import create_app as followup_app
from services.followup.settings import FollowupSettings
from services.intake.app import create_app as intake_app
from services.intake.settings import IntakeSettings
from services.runtime.settings import ServiceSettings
from services.triage.app import create_app as triage_app
from services.triage.insights.app import create_app as insights_app
from services.triage.settings import TriageSettings

FACTORIES: dict[str, tuple[type[ServiceSettings], Any]] = {
    "intake": (IntakeSettings, intake_app),
    "triage": (TriageSettings, triage_app),
    "compensation": (CompensationSettings, compensation_app),
    "followup": (FollowupSettings, followup_app),
    # Triage's insights worker, a process of its own (started by the tests that need it).
    "insights": (TriageSettings, insights_app),
}
SERVICES = ("intake", "triage", "compensation", "followup")


@dataclass
class FakeClock:
    """A clock tests move by hand: days pass in milliseconds."""

    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


def settings_for(name: str, infra: Any, namespace: str, **overrides: Any) -> ServiceSettings:
    settings_class, _ = FACTORIES[name]
    values = {
        "kafka_bootstrap_servers": infra.kafka_bootstrap_servers,
        "mongodb_uri": infra.mongodb_uri,
        "mongodb_database_prefix": namespace,
        "consumer_group_prefix": namespace,
        # A secured broker and store: security protocol, credentials, CA files.
        **getattr(infra, "service_settings", {}),
        **overrides,
    }
    return settings_class(**values)


async def start_services(
    stack: AsyncExitStack,
    infra: Any,
    namespace: str,
    clock: Any,
    names: tuple[str, ...] = SERVICES,
    **overrides: Any,
) -> dict[str, AsgiFastStream]:
    apps: dict[str, AsgiFastStream] = {}
    for name in names:
        _, factory = FACTORIES[name]
        app = factory(settings_for(name, infra, namespace, **overrides), clock)
        await stack.enter_async_context(app)
        apps[name] = app
    return apps
