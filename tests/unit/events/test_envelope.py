"""Every event type: a minimal and a full event round-trip; invalid ones are refused with
the failing field named."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from events import payloads as p
from events import payloads_v1 as v1
from events.envelope import decode_event, decode_payload, encode_event, new_event, replayed
from events.errors import EventValidationError, UnknownEventType
from events.names import EventType
from events.registry import LATEST

SHA = "a" * 64
COMMIT = "b" * 40

MINIMAL: dict[EventType, Any] = {
    EventType.COMMIT_SEEN: p.CommitSeen(repository="recipes", url="file:///r", branch="main",
                                        new_commit=COMMIT),
    EventType.BUILDER_SEEN: p.BuilderSeen(builder="b1", arch="x86_64",
                                          state=p.BuilderState.ONLINE, boot="x", slots=1,
                                          interval_s=10.0),
    EventType.TASK_READY: p.TaskReady(task_id=1, attempt=1, builder="b1", source="zlib",
                                      version="1.3", release=2, arch="x86_64",
                                      repository="recipes", repository_url="file:///r",
                                      commit=COMMIT, recipe_path="z/zlib"),
    EventType.BUILD_STARTED: p.BuildStarted(task_id=1, builder="b1", arch="x86_64"),
    EventType.BUILD_ADMITTED: p.BuildAdmitted(task_id=1, attempt=1, builder="b1",
                                              arch="x86_64"),
    EventType.BUILD_DONE: p.BuildDoneV3(task_id=1, attempt=1, builder="b1", source="zlib",
                                        version="1.3", release=2, build_release=1,
                                        arch="x86_64", outcome=p.Outcome.FAILED),
    EventType.BUILD_ACCEPTED: p.BuildAccepted(
        task_id=1, attempt=1, packages=[],
        build=p.BuildDone(task_id=1, attempt=1, builder="b1", source="zlib", version="1.3",
                          release=2, build_release=1, arch="x86_64",
                          outcome=p.Outcome.SUCCESS)),
    EventType.PACKAGE_PUBLISHED: p.PackagePublished(
        task_id=1, source="zlib", release=2, build_release=1, arch="x86_64",
        channel="volatile", generation=1, packages=[]),
    EventType.PUBLISH_FAILED: p.PublishFailed(task_id=1, source="zlib", release=2,
                                              arch="x86_64", channel="volatile",
                                              reason="sha256 mismatch"),
    EventType.TASK_CANCELLED: p.TaskCancelled(task_id=1, builder="b1", arch="x86_64"),
}

FULL: dict[EventType, Any] = {
    EventType.COMMIT_SEEN: p.CommitSeen(repository="recipes", url="https://git.example/r",
                                        branch="main", new_commit=COMMIT, old_commit="c" * 40,
                                        arches=["x86_64", "aarch64"],
                                        seen_via=p.SeenVia.WEBHOOK),
    EventType.BUILDER_SEEN: p.BuilderSeen(
        builder="b1", arch="x86_64", state=p.BuilderState.DRAINING, boot="0f" * 16, slots=4,
        interval_s=2.5, running=[p.TaskAttempt(task_id=7, attempt=2)],
        claimed=[p.TaskAttempt(task_id=9, attempt=1)], features=["big", "kvm"],
        memory_mb=65536, disk_mb=1 << 20, artefacts_url="http://b1:8091",
        environments=[SHA]),
    EventType.TASK_READY: p.TaskReady(
        task_id=7, attempt=2, builder="b1", source="zlib", version="1.3", release=2,
        arch="x86_64", repository="recipes", repository_url="file:///r", commit=COMMIT,
        recipe_path="z/zlib", channel="unstable", build_release=3, reason="retry",
        critical_path=12, priority=-5,
        index_url="http://127.0.0.1:1/volatile/x86_64/index.json", environment=SHA,
        limits=p.BuildLimits(timeout_s=60.0, silence_s=5.0, log_bytes=1 << 20,
                             log_overflow=p.LogOverflow.TRUNCATE, output_bytes=1 << 30)),
    EventType.BUILD_STARTED: p.BuildStarted(task_id=7, builder="b1", arch="x86_64", attempt=2),
    EventType.BUILD_ADMITTED: p.BuildAdmitted(task_id=7, attempt=2, builder="b1",
                                              arch="x86_64"),
    EventType.BUILD_DONE: p.BuildDoneV3(
        task_id=7, attempt=2, builder="b1", source="zlib", version="1.3", release=2,
        build_release=1, arch="x86_64", outcome=p.Outcome.SUCCESS, reason=None,
        log_url="http://h/log",
        artefacts=[p.Artefact(name="zlib", filename="zlib-1.3-2-1-x86_64.tar.zst",
                              url="http://h/a", sha256=SHA, size=10)],
        duration_s=1.5, channel="volatile", environment=SHA,
        usage=p.UsageV3(cpu_s=1.0, max_rss_kb=2048, output_bytes=10, log_bytes=5,
                        disk_bytes=1 << 20)),
    EventType.BUILD_ACCEPTED: p.BuildAccepted(
        task_id=7, attempt=2, packages=["zlib", "zlib-devel"],
        build=p.BuildDone(
            task_id=7, attempt=2, builder="b1", source="zlib", version="1.3", release=2,
            build_release=1, arch="x86_64", outcome=p.Outcome.SUCCESS,
            artefacts=[p.Artefact(name="zlib", filename="zlib-1.3-2-1-x86_64.tar.zst",
                                  url="http://h/a", sha256=SHA, size=10)])),
    EventType.PACKAGE_PUBLISHED: p.PackagePublished(
        task_id=7, source="zlib", release=2, build_release=1, arch="x86_64",
        channel="volatile", generation=4,
        packages=[p.PublishedPackage(name="zlib", version="1.3", release=2, build_release=1,
                                     sha256=SHA, provides=["soname(libz.so.1(x86_64))"])]),
    EventType.PUBLISH_FAILED: p.PublishFailed(task_id=7, source="zlib", release=2,
                                              arch="x86_64", channel="volatile",
                                              reason="artefact unreachable", retryable=True),
    EventType.TASK_CANCELLED: p.TaskCancelled(task_id=7, builder="b1", arch="x86_64",
                                              attempt=2, reason="superseded"),
}


@pytest.mark.parametrize("kind", list(EventType))
@pytest.mark.parametrize("samples", [MINIMAL, FULL], ids=["minimal", "full"])
def test_round_trip(kind: EventType, samples: dict[EventType, Any]) -> None:
    event = new_event(samples[kind], source="test")
    assert event.type == kind.value
    assert event.cairnversion == LATEST[kind.value]
    decoded = decode_event(encode_event(event))
    assert decoded == event
    assert decoded.data == samples[kind]
    body = json.loads(encode_event(event))
    for attribute in ("specversion", "id", "source", "type", "time", "subject",
                      "datacontenttype", "data", "cairnversion", "correlationid"):
        assert attribute in body
    assert body["specversion"] == "1.0"


def test_causation_and_correlation_follow_the_chain() -> None:
    first = new_event(MINIMAL[EventType.COMMIT_SEEN], source="summit")
    second = new_event(MINIMAL[EventType.TASK_READY], source="summit", causation=first)
    third = new_event(MINIMAL[EventType.BUILD_STARTED], source="avalanche", causation=second)
    assert first.correlationid == first.id and first.causationid is None
    assert second.causationid == first.id and second.correlationid == first.id
    assert third.causationid == second.id and third.correlationid == first.id


def test_subject_is_routing_key_word() -> None:
    event = new_event(MINIMAL[EventType.TASK_READY], source="summit")
    assert event.routing_key == "task-ready.b1"  # addressed to its builder
    published = new_event(MINIMAL[EventType.PACKAGE_PUBLISHED], source="vessel")
    assert published.routing_key == "package-published.volatile"


def test_version_1_events_still_decode() -> None:
    """Recorded runs hold version 1 task-ready, build-done and task-cancelled events: they
    decode into the frozen version 1 types, with the routing key they had."""
    old = v1.TaskReady(task_id=1, source="zlib", version="1.3", release=2, arch="x86_64",
                       repository="recipes", repository_url="file:///r", commit=COMMIT,
                       recipe_path="z/zlib")
    event = new_event(old, source="summit")
    assert (event.cairnversion, event.routing_key) == (1, "task-ready.x86_64")
    assert decode_event(encode_event(event)).data == old
    done = new_event(v1.BuildDone(task_id=1, builder="b1", source="zlib", version="1.3",
                                  release=2, build_release=1, arch="x86_64",
                                  outcome=v1.Outcome.SUCCESS), source="b")
    assert decode_event(encode_event(done)).data.outcome is v1.Outcome.SUCCESS


def test_replayed_keeps_the_id() -> None:
    event = new_event(MINIMAL[EventType.TASK_CANCELLED], source="summit")
    again = replayed(event)
    assert again.id == event.id and again.cairnreplayed and not event.cairnreplayed


def _body(kind: EventType) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(encode_event(new_event(FULL[kind], source="t")))
    return result


INVALID = [
    ("not json", lambda b: None, None),
    ("missing id", lambda b: b.pop("id"), "id"),
    ("bad specversion", lambda b: b.update(specversion="0.3"), "specversion"),
    ("unknown type", lambda b: b.update(type="build-exploded"), "type"),
    ("unknown version", lambda b: b.update(cairnversion=9), "type"),
    ("subject with a dot", lambda b: b.update(subject="x86.64"), "subject"),
    ("subject not the data's", lambda b: b.update(subject="aarch64"), "subject"),
    ("unknown envelope field", lambda b: b.update(extra=1), None),
    ("bad time", lambda b: b.update(time="yesterday"), "time"),
]


@pytest.mark.parametrize(("label", "mutate", "field"), INVALID, ids=[i[0] for i in INVALID])
def test_invalid_envelopes_are_refused(label: str, mutate: Any, field: str | None) -> None:
    body = _body(EventType.BUILD_DONE)
    raw = b"{not json" if label == "not json" else None
    if raw is None:
        mutate(body)
        raw = json.dumps(body).encode()
    with pytest.raises(EventValidationError) as caught:
        decode_event(raw)
    if field is not None:
        assert caught.value.field == field


DATA_INVALID = [
    (EventType.BUILD_DONE, "outcome", "exploded", "data.outcome"),
    (EventType.BUILD_DONE, "task_id", 0, "data.task_id"),
    (EventType.BUILD_DONE, "task_id", "7", "data.task_id"),
    (EventType.BUILD_DONE, "artefacts", [{"name": "x"}], "data.artefacts[0].filename"),
    # A builder's URLs become links and downloads: http(s) only.
    (EventType.BUILD_DONE, "log_url", "javascript:alert(document.cookie)", "data.log_url"),
    (EventType.BUILD_DONE, "log_url", "JAVASCRIPT://%0aalert(1)", "data.log_url"),
    (EventType.BUILD_DONE, "artefacts", [{"name": "x", "filename": "x", "url": "file:///etc/passwd",
                                          "sha256": "0" * 64, "size": 1}],
     "data.artefacts[0].url"),
    (EventType.BUILDER_SEEN, "artefacts_url", "data:text/html,<script>", "data.artefacts_url"),
    (EventType.COMMIT_SEEN, "new_commit", "HEAD", "data.new_commit"),
    (EventType.TASK_READY, "release", -1, "data.release"),
    (EventType.TASK_READY, "arch", "x86.64", "data.arch"),
    (EventType.PACKAGE_PUBLISHED, "generation", 0, "data.generation"),
    (EventType.PUBLISH_FAILED, "reason", "", "data.reason"),
    (EventType.BUILD_STARTED, "surprise", 1, "data"),
    (EventType.TASK_CANCELLED, "task_id", None, "data.task_id"),
]


@pytest.mark.parametrize(("kind", "key", "value", "field"), DATA_INVALID)
def test_invalid_payloads_are_refused_naming_the_field(
    kind: EventType, key: str, value: Any, field: str
) -> None:
    body = _body(kind)
    body["data"][key] = value
    with pytest.raises(EventValidationError) as caught:
        decode_event(json.dumps(body).encode())
    assert caught.value.field == field


@pytest.mark.parametrize("kind", list(EventType))
def test_missing_required_payload_field_is_named(kind: EventType) -> None:
    body = _body(kind)
    required = msgspec.json.schema(type(FULL[kind]))["$defs"][type(FULL[kind]).__name__][
        "required"]
    body["data"].pop(required[0])
    with pytest.raises(EventValidationError) as caught:
        decode_event(json.dumps(body).encode())
    assert caught.value.field == f"data.{required[0]}"


def test_decode_payload_for_the_cli() -> None:
    with pytest.raises(EventValidationError, match=r"data\.outcome"):
        decode_payload("build-done", b'{"task_id": 1, "builder": "b", "source": "s", '
                       b'"version": "1", "release": 1, "build_release": 1, "arch": "x86_64",'
                       b' "outcome": "maybe"}')
    with pytest.raises(UnknownEventType):
        decode_payload("no-such-type", b"{}")


def test_build_done_v3_adds_the_disk_and_reads_as_v2() -> None:
    v3 = FULL[EventType.BUILD_DONE]
    event = new_event(v3, source="b1")
    assert event.cairnversion == 3 and isinstance(event.data, p.BuildDone)
    assert event.data.usage.disk_bytes == 1 << 20
    # A version 2 report still decodes (builders not upgraded yet) ...
    v2 = p.build_done_v2(v3)
    assert type(v2) is p.BuildDone and new_event(v2, source="b1").cairnversion == 2
    assert v2.usage == p.Usage(cpu_s=1.0, max_rss_kb=2048, output_bytes=10, log_bytes=5)
    # ... and a version 2 reader refuses what version 3 added: hence a new version.
    body = json.loads(encode_event(event))
    body["cairnversion"] = 2
    with pytest.raises(EventValidationError, match="disk_bytes"):
        decode_event(json.dumps(body).encode())
