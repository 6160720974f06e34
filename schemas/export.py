"""Write the JSON Schema files and the AsyncAPI document into schemas/.

python -m schemas.export            # (re)write the committed exports
python -m schemas.export --check    # exit 1 if they are stale
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from pydantic import BaseModel

from schemas.contract_app import ENVELOPES
from schemas.inbound import AppSubmission, CaseActionRecord, CustomerProfile, SocialPost

HERE = Path(__file__).resolve().parent
JSON_DIR = HERE / "json"
ASYNCAPI = HERE / "asyncapi.json"

INBOUND: dict[str, type[BaseModel]] = {
    "complaints.inbound.social": SocialPost,
    "complaints.inbound.app": AppSubmission,
    "customers.profiles": CustomerProfile,
    "cases.actions": CaseActionRecord,
}


def _dump(value: object) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True) + "\n"


def json_schemas() -> dict[str, str]:
    files = {f"inbound/{topic}.schema.json": _dump(model.model_json_schema(mode="validation"))
             for topic, model in INBOUND.items()}  # fmt: skip
    for event_type, envelope in ENVELOPES.items():
        files[f"events/{event_type}.schema.json"] = _dump(
            envelope.model_json_schema(mode="serialization")
        )
    return files


def asyncapi() -> str:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "asyncapi.json"
        subprocess.run(
            [sys.executable, "-m", "faststream", "docs", "gen", "schemas.contract_app:app",
             "--out", str(out)],
            cwd=HERE.parent, check=True, capture_output=True,
        )  # fmt: skip
        return _dump(json.loads(out.read_text(encoding="utf-8")))


def expected() -> dict[Path, str]:
    files = {JSON_DIR / name: text for name, text in json_schemas().items()}
    files[ASYNCAPI] = asyncapi()
    return files


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    stale = []
    for path, text in expected().items():
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current != text:
            stale.append(path.relative_to(HERE.parent))
            if not args.check:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
    if args.check and stale:
        print("stale exports (run `make schemas`):", *stale, sep="\n  ")
        return 1
    print(f"{len(stale)} export(s) {'stale' if args.check else 'written'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
