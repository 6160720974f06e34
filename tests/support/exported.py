"""The metric names the services export, read off their registries without any I/O."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from services.compensation.app import create_app as compensation_app
from services.followup.app import create_app as followup_app
from services.intake.app import create_app as intake_app
from services.runtime import kit as kit_module
from services.triage.app import create_app as triage_app
from services.triage.insights.app import create_app as insights_app

FACTORIES = {"intake": intake_app, "triage": triage_app, "compensation": compensation_app,
             "followup": followup_app, "insights": insights_app}  # fmt: skip
SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created"),
            "gauge": ("",), "summary": ("_sum", "_count", "_created")}  # fmt: skip
METRIC = re.compile(r"\b(?:complaints|faststream)_[a-z0-9_]+\b|\bup\b(?=\{)")


def built_kits() -> Iterator[tuple[str, Any]]:
    """Each service's kit, as its app factory builds it (no connection is made)."""
    built: list[Any] = []
    original = kit_module.ServiceKit.__init__

    def keep(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        built.append(self)

    kit_module.ServiceKit.__init__ = keep  # type: ignore[method-assign]
    try:
        for name, factory in FACTORIES.items():
            factory()
            yield name, built[-1]
    finally:
        kit_module.ServiceKit.__init__ = original  # type: ignore[method-assign]


def exported_names() -> dict[str, set[str]]:
    """Sample names per service, e.g. complaints_offers_total, …_seconds_bucket."""
    names: dict[str, set[str]] = {}
    for service, kit in built_kits():
        found: set[str] = set()
        for family in kit.registry.collect():
            found |= {family.name + suffix for suffix in SUFFIXES.get(family.type, ("",))}
        names[service] = found
    return names


def metrics_in(expression: str) -> set[str]:
    return set(METRIC.findall(expression))
