"""Every query the services send, recorded, then asked of the store with `explain`.

A flow of the real services is run with a QueryRecorder among the store listeners
(services.runtime.metrics.STORE_LISTENERS); afterwards each distinct query shape (which
fields, which operators, which sort) is explained on the store, and any plan that reads
the whole collection (COLLSCAN) is reported.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from pymongo import AsyncMongoClient, monitoring


@dataclass(frozen=True)
class Query:
    database: str
    collection: str
    filter: Mapping[str, Any]
    sort: Mapping[str, Any] | None
    command: str

    @property
    def shape(self) -> str:
        return f"{self.database.split('_')[-1]}.{self.collection} {self.command} " + json.dumps(
            {"filter": _shape(self.filter), "sort": self.sort}, sort_keys=True
        )


def _shape(value: Any) -> Any:
    """The query with its values replaced by their types: one plan per shape."""
    if isinstance(value, Mapping):
        return {key: _shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_shape(item) for item in value[:1]]
    return type(value).__name__


@dataclass
class QueryRecorder(monitoring.CommandListener):
    """Records the filters of reads and writes sent to databases starting with ``prefix``."""

    prefix: str
    queries: list[Query] = field(default_factory=list)

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.database_name.startswith(self.prefix) or event.command_name == "bulkWrite":
            self.queries.extend(self._queries(event.database_name, event.command))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass

    def _queries(self, database: str, command: Mapping[str, Any]) -> Iterator[Query]:
        name = next(iter(command))
        if name == "find":
            yield Query(database, command["find"], command.get("filter") or {},
                        command.get("sort"), "find")  # fmt: skip
        elif name == "findAndModify":
            yield Query(database, command[name], command.get("query") or {},
                        command.get("sort"), name)  # fmt: skip
        elif name in ("update", "delete"):
            for statement in command.get(f"{name}s", []):
                yield Query(database, command[name], statement.get("q") or {}, None, name)
        elif name == "aggregate":
            stages = command.get("pipeline") or [{}]
            yield Query(database, command[name], stages[0].get("$match") or {}, None, name)
        elif name == "count":
            yield Query(database, command[name], command.get("query") or {}, None, name)
        elif name == "bulkWrite":
            namespaces = [info["ns"] for info in command.get("nsInfo", [])]
            for operation in command.get("ops", []):
                kind = next(iter(operation))
                ns = namespaces[operation[kind]]
                if kind != "insert" and ns.startswith(self.prefix):
                    db, collection = ns.split(".", 1)
                    yield Query(db, collection, operation.get("filter") or {}, None,
                                f"bulkWrite.{kind}")  # fmt: skip


def _stages(plan: Mapping[str, Any]) -> Iterator[str]:
    yield str(plan.get("stage"))
    for key in ("inputStage", "outerStage", "innerStage"):
        if isinstance(plan.get(key), Mapping):
            yield from _stages(plan[key])
    for child in plan.get("inputStages", []):
        yield from _stages(child)


async def full_scans(uri: str, queries: list[Query]) -> tuple[int, list[str]]:
    """(how many distinct shapes were explained, the shapes whose plan scans)."""
    distinct = {query.shape: query for query in queries}
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri, tz_aware=True)
    scanning = []
    try:
        for shape, query in sorted(distinct.items()):
            find: dict[str, Any] = {"find": query.collection, "filter": dict(query.filter)}
            if query.sort:
                find["sort"] = dict(query.sort)
            explained = await client[query.database].command(
                {"explain": find, "verbosity": "queryPlanner"}
            )
            stages = list(_stages(explained["queryPlanner"]["winningPlan"]))
            if any("COLLSCAN" in stage for stage in stages):
                scanning.append(f"{shape}: {stages}")
    finally:
        await client.close()
    return len(distinct), scanning
