"""docs/contract.md against the exported schemas (schemas/json/, schemas/asyncapi.json),
both ways: every topic, event type, action and field the page names exists in the
exports, and everything the exports have is on the page. Also: the page's JSON examples
and the bundled samples are valid records of the contract."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from schemas.contract_app import ENVELOPES
from schemas.export import INBOUND

REPO_ROOT = Path(__file__).resolve().parents[2]
DOC = (REPO_ROOT / "docs" / "contract.md").read_text(encoding="utf-8")
EXPORTS = REPO_ROOT / "schemas" / "json"
ASYNCAPI = json.loads((REPO_ROOT / "schemas" / "asyncapi.json").read_text(encoding="utf-8"))
SAMPLES = REPO_ROOT / "deploy" / "local" / "samples"
ACTIONS_TOPIC = "cases.actions"

Table = list[dict[str, str]]


# --- reading the page ------------------------------------------------------------------


def sections(markdown: str) -> dict[str, str]:
    """Heading text -> the text up to the next heading (fenced code kept as is)."""
    found: dict[str, str] = {}
    heading, lines, fenced = "", [], False
    for line in markdown.splitlines():
        fenced ^= line.startswith("```")
        if not fenced and re.match(r"#{1,6} ", line):
            found[heading] = "\n".join(lines)
            heading, lines = line.lstrip("#").strip(), []
        else:
            lines.append(line)
    found[heading] = "\n".join(lines)
    return found


def tables(text: str) -> list[Table]:
    """Every Markdown table in ``text``: rows as {first-row cell: cell}."""
    found: list[Table] = []
    block: list[list[str]] = []
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            block.append([cell.strip() for cell in line.strip().strip("|").split("|")])
            continue
        if len(block) > 2:
            header, body = block[0], block[2:]  # block[1] is the |---| line
            found.append([dict(zip(header, row, strict=True)) for row in body])
        block = []
    return found


def table(heading: str, first_column: str) -> Table:
    """The table under ``heading`` whose first header cell is ``first_column``."""
    section = SECTIONS.get(heading)
    assert section is not None, f"docs/contract.md has no heading {heading!r}"
    for candidate in tables(section):
        if candidate and next(iter(candidate[0])) == first_column:
            return candidate
    raise AssertionError(f"docs/contract.md: no `{first_column}` table under {heading!r}")


def names(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def name(cell: str) -> str:
    (found,) = names(cell)
    return found


SECTIONS = sections(DOC)


# --- reading the exports -----------------------------------------------------------------


def resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    """Follow a $ref, the one non-null branch of an optional (anyOf with null), or the
    elements of a list (a dotted field of a list names a field of its elements)."""
    if schema.get("type") == "array" and isinstance(schema.get("items"), dict):
        return resolve(schema["items"], root)
    if "$ref" in schema:
        target: Any = root
        for part in schema["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        return resolve(target, root)
    branches = [b for b in schema.get("anyOf", []) if b.get("type") != "null"]
    if len(branches) == 1:
        return resolve(branches[0], root)
    return schema


def fields(schema: dict[str, Any]) -> tuple[set[str], set[str]]:
    """(all property names, required ones) of an object schema."""
    return set(schema.get("properties", {})), set(schema.get("required", []))


def load(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text(encoding="utf-8")))


def exported_events() -> dict[str, dict[str, Any]]:
    """Event type -> the JSON Schema of its `data`, from schemas/json/events/."""
    found = {}
    for path in sorted((EXPORTS / "events").glob("*.schema.json")):
        envelope = load(path)
        event_type = envelope["properties"]["type"]["const"]
        found[event_type] = resolve(envelope["properties"]["data"], envelope)
    return found


def asyncapi_topics() -> dict[str, str]:
    """Event type -> the topic AsyncAPI says it is published on."""
    found = {}
    for topic, channel in ASYNCAPI["channels"].items():
        for reference in channel["messages"].values():
            payload = resolve(resolve(reference, ASYNCAPI)["payload"], ASYNCAPI)
            for branch in payload.get("anyOf", [payload]):
                event = resolve(branch, ASYNCAPI)
                event_type = event.get("properties", {}).get("type", {}).get("const")
                if event_type and "data" in event["properties"]:
                    found[event_type] = topic
    return found


def subscribed_topics() -> set[str]:
    """The topics AsyncAPI describes as received by the system."""
    return {
        operation["channel"]["$ref"].rsplit("/", 1)[-1]
        for operation in ASYNCAPI["operations"].values()
        if operation["action"] == "receive"
    }


def action_schemas() -> dict[str, dict[str, Any]]:
    """Action type -> its JSON Schema, from schemas/json/inbound/cases.actions.schema.json."""
    root = load(EXPORTS / "inbound" / f"{ACTIONS_TOPIC}.schema.json")
    found = {}
    for branch in root["oneOf"]:
        action = resolve(branch, root)
        found[action["properties"]["type"]["const"]] = action
    return found


# --- the checks -----------------------------------------------------------------------------


def test_outbound_event_types_are_the_same_on_the_page_and_in_both_exports() -> None:
    rows = table("Outbound events", "topic")
    on_page = [name(row["event type"]) for row in rows]
    assert len(on_page) == len(set(on_page)), "an event type has two rows"
    assert set(on_page) == set(exported_events()), "page vs schemas/json/events/"
    assert set(on_page) == set(asyncapi_topics()), "page vs schemas/asyncapi.json"


@pytest.mark.parametrize("row", table("Outbound events", "topic"), ids=lambda r: r["event type"])
def test_each_event_row_has_the_exported_topic_and_fields(row: dict[str, str]) -> None:
    event_type = name(row["event type"])
    data = exported_events().get(event_type)
    assert data is not None, f"{event_type} is on the page but not in schemas/json/events/"
    assert name(row["topic"]) == asyncapi_topics().get(event_type), event_type
    properties, required = fields(data)
    documented_required = set(names(row["required `data` fields"]))
    documented_other = set(names(row["other `data` fields"]))
    assert documented_required == required, (
        f"{event_type} required: page lacks {sorted(required - documented_required)}, "
        f"schema lacks {sorted(documented_required - required)}"
    )
    assert documented_other == properties - required, (
        f"{event_type} other fields: page lacks {sorted(properties - required - documented_other)}, "
        f"schema lacks {sorted(documented_other - properties)} (or they are required there)"
    )


def test_inbound_topics_are_the_ones_the_system_receives() -> None:
    on_page = {name(row["topic"]) for row in table("Inbound topics", "topic")}
    assert on_page == subscribed_topics()
    json_payloads = {path.name.removesuffix(".schema.json")
                     for path in (EXPORTS / "inbound").glob("*.schema.json")}  # fmt: skip
    assert json_payloads <= on_page
    for topic in on_page:
        assert f"`{topic}`" in SECTIONS, f"no section for {topic}"


@pytest.mark.parametrize("topic", sorted(set(INBOUND) - {ACTIONS_TOPIC}))
def test_inbound_field_tables_match_the_exported_payload(topic: str) -> None:
    root = load(EXPORTS / "inbound" / f"{topic}.schema.json")
    rows = {name(row["field"]): row["required"] == "yes" for row in table(f"`{topic}`", "field")}
    top = {field: required for field, required in rows.items() if "." not in field}
    properties, required = fields(root)
    assert set(top) == properties, (
        f"{topic}: page lacks {sorted(properties - set(top))}, "
        f"schema lacks {sorted(set(top) - properties)}"
    )
    assert {field for field, needed in top.items() if needed} == required, topic
    for dotted, needed in rows.items():
        if "." not in dotted:
            continue
        parent, child = dotted.split(".", 1)
        nested = resolve(root["properties"][parent], root)
        nested_properties, nested_required = fields(nested)
        assert child in nested_properties, f"{topic}: {dotted} is not in the schema"
        assert (child in nested_required) == needed, f"{topic}: {dotted} required-ness"


def test_action_tables_match_the_exported_actions() -> None:
    exported = action_schemas()
    every = set.intersection(*(fields(schema)[0] for schema in exported.values()))
    always = set.intersection(*(fields(schema)[1] for schema in exported.values()))
    envelope = {name(row["field"]): row["required"] == "yes"
                for row in table(f"`{ACTIONS_TOPIC}`", "field")}  # fmt: skip
    assert set(envelope) == every, "the fields every action has"
    assert {field for field, needed in envelope.items() if needed} == always, "required by all"
    rows = {name(row["action"]): row for row in table(f"`{ACTIONS_TOPIC}`", "action")}
    assert set(rows) == set(exported), "action types: page vs schema"
    for action_type, row in rows.items():
        properties, required = fields(exported[action_type])
        assert set(names(row["required fields"])) == required - set(envelope), action_type
        assert set(names(row["optional fields"])) == properties - required - set(envelope), (
            action_type
        )


def json_examples() -> list[tuple[str, Any]]:
    """(heading, value) of every ```json block on the page."""
    found = []
    for heading, text in SECTIONS.items():
        for block in re.findall(r"```json\n(.*?)```", text, re.DOTALL):
            found.append((heading, json.loads(block)))
    return found


def test_the_page_has_examples_and_each_is_valid() -> None:
    examples = json_examples()
    assert {heading for heading, _ in examples} >= {f"`{topic}`" for topic in INBOUND}
    for heading, value in examples:
        model = _model_for(heading, value)
        # Examples abbreviate long texts with "…", never fields: each must validate.
        model.model_validate(value)


def _model_for(heading: str, value: Any) -> type[BaseModel]:
    if "specversion" in value:
        return ENVELOPES[value["type"]]
    topic = name(heading)
    assert topic in INBOUND, f"a JSON example under {heading!r}, which names no JSON topic"
    return INBOUND[topic]


def test_every_bundled_sample_is_a_valid_record() -> None:
    checked = 0
    for path in sorted(SAMPLES.glob("*.json")):
        value = json.loads(path.read_text(encoding="utf-8"))
        topic = ("customers.profiles" if path.name.startswith("customer-profile")
                 else "complaints.inbound.social" if "post_id" in value
                 else "complaints.inbound.app")  # fmt: skip
        INBOUND[topic].model_validate(value)
        checked += 1
    assert checked >= 5 and len(list(SAMPLES.glob("*.eml"))) >= 4
