"""The JSON Schema files and the Python types agree: the files are what the types generate,
and the schema validator accepts and refuses exactly what the typed decoder does."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest

import schemas
from events.envelope import EventValidationError, decode_event, encode_event, new_event
from events.registry import SPECS, spec_for
from events.schemagen import ENVELOPE_NAME, generate, render
from tests.unit.events.test_envelope import DATA_INVALID, FULL, MINIMAL


def test_schema_files_are_what_the_types_generate() -> None:
    generated = generate()
    assert sorted(generated) == schemas.names()
    for name, schema in generated.items():
        shipped = schemas.load(name)
        assert render(shipped) == render(schema), f"{name} is out of step with the types"


@pytest.mark.parametrize("name", schemas.names())
def test_every_schema_is_valid_draft_2020_12(name: str) -> None:
    schema = schemas.load(name)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)


def _validators(event_type: str) -> tuple[jsonschema.Draft202012Validator, ...]:
    envelope = jsonschema.Draft202012Validator(schemas.load(ENVELOPE_NAME))
    data = jsonschema.Draft202012Validator(schemas.load(spec_for(event_type).schema_name))
    return envelope, data


def _schema_accepts(body: dict[str, Any]) -> bool:
    envelope, data = _validators(body["type"])
    return envelope.is_valid(body) and data.is_valid(body["data"])


def _decoder_accepts(body: dict[str, Any]) -> bool:
    try:
        decode_event(json.dumps(body).encode())
    except EventValidationError:
        return False
    return True


@pytest.mark.parametrize("samples", [MINIMAL, FULL], ids=["minimal", "full"])
def test_valid_events_pass_both(samples: dict[Any, Any]) -> None:
    for payload in samples.values():
        body = json.loads(encode_event(new_event(payload, source="t")))
        assert _schema_accepts(body)
        assert _decoder_accepts(body)


@pytest.mark.parametrize(("kind", "key", "value", "field"), DATA_INVALID)
def test_invalid_events_fail_both(kind: Any, key: str, value: Any, field: str) -> None:
    body = json.loads(encode_event(new_event(FULL[kind], source="t")))
    body["data"][key] = value
    assert not _schema_accepts(body)
    assert not _decoder_accepts(body)


def test_every_type_has_a_schema_file() -> None:
    assert {spec.schema_name for spec in SPECS} | {ENVELOPE_NAME} == set(schemas.names())
