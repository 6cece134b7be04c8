"""Generate the JSON Schema files from the typed events, or check that they agree.

``python -m events.schemagen --check`` fails when a type changed without its schema; a
published schema version is immutable, so a change that alters an existing file means a
new version is due instead.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import msgspec

from events.envelope import Event
from events.registry import SPECS

DRAFT = "https://json-schema.org/draft/2020-12/schema"
BASE_ID = "https://cairn.example/schemas/"
ENVELOPE_NAME = "envelope.v1.json"


def _schema(tp: Any, name: str, title: str) -> dict[str, Any]:
    body = msgspec.json.schema(tp)
    return {"$schema": DRAFT, "$id": BASE_ID + name, "title": title, **body}


def generate() -> dict[str, dict[str, Any]]:
    """Every schema file's content, keyed by file name."""
    files = {
        ENVELOPE_NAME: _schema(
            Event[dict[str, Any]], ENVELOPE_NAME, "cairn event envelope (CloudEvents 1.0)"
        )
    }
    for spec in SPECS:
        files[spec.schema_name] = _schema(
            spec.payload, spec.schema_name, f"{spec.type} v{spec.version}: {spec.summary}"
        )
    return files


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="only compare, write nothing")
    parser.add_argument("--dir", type=Path, default=Path(__file__).parent.parent / "schemas")
    args = parser.parse_args(argv)
    stale = []
    for name, schema in generate().items():
        path = args.dir / name
        text = render(schema)
        if path.exists() and path.read_text() == text:
            continue
        stale.append(name)
        if not args.check:
            path.write_text(text)
    if args.check and stale:
        print("schemas out of step with events/payloads.py: " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
