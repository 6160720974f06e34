"""Store calls the services must not make, because a supported store gets them wrong.

A findAndModify upsert that loses a race to create its document: secantusd-rs 0.5.3
answers without the document, FerretDB 1.24 and mongo-java-server 1.47 hand out
duplicates (tests/integration/test_store_guarantees.py has the details). Services create
documents with a plain insert (or an update_one upsert, whose outcome does not depend on
the reply) and use find_one_and_update only on documents that exist.
"""

from __future__ import annotations

import ast
from pathlib import Path

SERVICES = Path(__file__).resolve().parents[2] / "services"


def test_no_find_one_and_update_with_upsert_in_services() -> None:
    offenders = []
    for path in sorted(SERVICES.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "find_one_and_update"
                and any(kw.arg == "upsert" for kw in node.keywords)
            ):
                offenders.append(f"{path.relative_to(SERVICES.parent)}:{node.lineno}")
    assert offenders == []
