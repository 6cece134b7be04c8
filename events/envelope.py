"""The CloudEvents 1.0 envelope (JSON structured mode) every cairn message travels in.

Decoding is validation: the envelope and then its ``data`` are decoded strictly into frozen
typed structs (unknown fields, wrong types, bad patterns are refused), and those structs are
the ones the JSON Schemas in ``schemas/`` are generated from and tested against.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

import msgspec

from events.errors import EventValidationError
from events.names import SUBJECT_RE, routing_key
from events.registry import EventSpec, spec_for, spec_of_payload

P = TypeVar("P")

#: Largest body a consumer accepts; bigger ones are dead-lettered unread.
MAX_BODY_BYTES = 1024 * 1024

EventId = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
Subject = Annotated[str, msgspec.Meta(pattern=SUBJECT_RE.pattern)]
SourceUri = Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]
TypeName = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9-]*$", max_length=64)]
Version = Annotated[int, msgspec.Meta(ge=1)]


class Event(msgspec.Struct, Generic[P], frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One event: CloudEvents attributes, cairn's extensions, and a typed payload."""

    id: EventId
    source: SourceUri
    type: TypeName
    subject: Subject
    time: datetime
    cairnversion: Version
    correlationid: EventId
    data: P
    causationid: EventId | None = None
    #: Set by ``cairn events replay``: the same event (same id) sent again on purpose.
    cairnreplayed: bool = False
    specversion: Literal["1.0"] = "1.0"
    datacontenttype: Literal["application/json"] = "application/json"

    @property
    def routing_key(self) -> str:
        return routing_key(self.type, self.subject)

    @property
    def spec(self) -> EventSpec:
        return spec_for(self.type, self.cairnversion)


class _Wire(Event[msgspec.Raw], frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The envelope with its data left undecoded, to pick the payload type first."""


_wire_decoder = msgspec.json.Decoder(_Wire)
_payload_decoders: dict[type[Any], msgspec.json.Decoder[Any]] = {}
_encoder = msgspec.json.Encoder()
_PATH = re.compile(r" - at `\$(?P<path>[^`]*)`$")
_MISSING = re.compile(r"missing required field `([^`]+)`")


def new_event(
    data: Any,
    *,
    source: str,
    causation: Event[Any] | None = None,
    subject: str | None = None,
    event_id: str | None = None,
) -> Event[Any]:
    """Wrap a payload: a fresh id, now as time, correlation carried over from its cause."""
    spec = spec_of_payload(data)
    eid = event_id or str(uuid.uuid4())
    event: Event[Any] = Event(
        id=eid,
        source=source,
        type=spec.type.value,
        subject=subject if subject is not None else spec.subject(data),
        time=datetime.now(UTC),
        cairnversion=spec.version,
        correlationid=causation.correlationid if causation else eid,
        causationid=causation.id if causation else None,
        data=data,
    )
    return validate_event(event)


def validate_event(event: Event[Any]) -> Event[Any]:
    """Check an event built in code the same way a consumer will check it on the wire."""
    return decode_event(encode_event(event))


def encode_event(event: Event[Any]) -> bytes:
    """The JSON body of an event."""
    return _encoder.encode(event)


def _field_of(exc: msgspec.ValidationError, prefix: str) -> tuple[str, str | None]:
    """Split msgspec's message into (what is wrong, JSON path of the field)."""
    text = str(exc)
    match = _PATH.search(text)
    path = match.group("path").lstrip(".") if match else ""
    message = text[: match.start()] if match else text
    missing = _MISSING.search(message)
    if missing:
        path = f"{path}.{missing.group(1)}".lstrip(".")
    return message, f"{prefix}{path}".rstrip(".") or None


def decode_event(body: bytes | str) -> Event[Any]:
    """Decode and validate an event; raise :class:`EventValidationError` naming the field."""
    try:
        wire = _wire_decoder.decode(body)
    except msgspec.ValidationError as exc:
        message, field = _field_of(exc, "")
        raise EventValidationError(message, field=field) from None
    except msgspec.DecodeError as exc:
        raise EventValidationError(f"body is not valid JSON: {exc}") from None
    spec = spec_for(wire.type, wire.cairnversion)
    decoder = _payload_decoders.get(spec.payload)
    if decoder is None:
        decoder = _payload_decoders[spec.payload] = msgspec.json.Decoder(spec.payload)
    try:
        data = decoder.decode(wire.data)
    except msgspec.ValidationError as exc:
        message, field = _field_of(exc, "data.")
        raise EventValidationError(message, field=field) from None
    derived = spec.subject(data)
    if wire.subject != derived:
        # Brokers route and authorise by the subject, consumers act on the data: an event
        # whose subject says one thing and whose data another could pass a topic permission
        # for the first and then act on the second.
        raise EventValidationError(
            f"subject {wire.subject!r} is not the one its data gives ({derived!r})",
            field="subject")
    return Event(
        id=wire.id,
        source=wire.source,
        type=wire.type,
        subject=wire.subject,
        time=wire.time,
        cairnversion=wire.cairnversion,
        correlationid=wire.correlationid,
        causationid=wire.causationid,
        cairnreplayed=wire.cairnreplayed,
        data=data,
    )


def decode_payload(event_type: str, data: bytes | str, version: int | None = None) -> Any:
    """Decode just a payload (for ``cairn events publish --data``)."""
    spec = spec_for(event_type, version)
    try:
        return msgspec.json.decode(data, type=spec.payload)
    except msgspec.ValidationError as exc:
        message, field = _field_of(exc, "data.")
        raise EventValidationError(message, field=field) from None
    except msgspec.DecodeError as exc:
        raise EventValidationError(f"not valid JSON: {exc}") from None


def replayed(event: Event[Any]) -> Event[Any]:
    """The same event (same id) marked as replayed."""
    return msgspec.structs.replace(event, cairnreplayed=True)
