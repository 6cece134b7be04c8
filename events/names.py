"""Every exchange, queue, routing key and MQTT topic name, defined once.

Services, the RabbitMQ definitions file and the tests all import from here: a name is
never typed twice.
"""

from __future__ import annotations

import re
from enum import StrEnum

#: The durable topic exchange every event is published to.
EVENTS_EXCHANGE = "cairn.events"
#: The direct exchange dead letters go through; the routing key is the queue's name.
DEAD_LETTER_EXCHANGE = "cairn.dead"
#: Suffix of the dead-letter queue that belongs to a consuming queue.
DEAD_LETTER_SUFFIX = ".dead"

#: Headers written on a dead-lettered message.
HEADER_REASON = "x-cairn-reason"
HEADER_ROUTING_KEY = "x-cairn-routing-key"
HEADER_QUEUE = "x-cairn-queue"
HEADER_ATTEMPTS = "x-cairn-attempts"

#: A subject is one routing-key word: no dots, no wildcards.
SUBJECT_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_+-]{0,127}$")


class EventType(StrEnum):
    """Every event type (ARCHITECTURE.md lists who sends each); the value is the CloudEvents
    ``type``."""

    COMMIT_SEEN = "commit-seen"
    BUILDER_SEEN = "builder-seen"
    TASK_READY = "task-ready"
    BUILD_STARTED = "build-started"
    BUILD_ADMITTED = "build-admitted"
    BUILD_DONE = "build-done"
    BUILD_ACCEPTED = "build-accepted"
    PACKAGE_PUBLISHED = "package-published"
    PUBLISH_FAILED = "publish-failed"
    TASK_CANCELLED = "task-cancelled"


class Queue(StrEnum):
    """Durable queues, one per consuming role."""

    SUMMIT = "cairn.summit"
    VESSEL = "cairn.vessel"
    JOURNAL = "cairn.journal"
    #: Each builder's own queue: ``cairn.builder.<builder>`` (its assignments, admissions,
    #: cancellations, and the publications that let it drop artefacts).
    BUILDER = "cairn.builder"


def routing_key(event_type: str, subject: str) -> str:
    """The routing key of an event: its type, a dot, then its subject."""
    return f"{event_type}.{subject}"


def binding(event_type: str, subject: str = "*") -> str:
    """A binding pattern for one type (any subject unless given)."""
    return f"{event_type}.{subject}"


def builder_queue(builder: str) -> str:
    """A builder's own durable queue: summit addresses it by the builder's name."""
    return f"{Queue.BUILDER}.{builder}"


def dead_letter_queue(queue: str) -> str:
    """Where a queue's dead letters end up."""
    return f"{queue}{DEAD_LETTER_SUFFIX}"


# MQTT topics (telemetry, not events).
MQTT_PREFIX = "cairn"


def builder_status_topic(builder: str) -> str:
    """Retained JSON status of one builder; its last will sets ``offline``."""
    return f"{MQTT_PREFIX}/builders/{builder}/status"


def task_log_topic(task_id: int) -> str:
    """Live log lines of one task."""
    return f"{MQTT_PREFIX}/tasks/{task_id}/log"


BUILDER_STATUS_WILDCARD = f"{MQTT_PREFIX}/builders/+/status"
TASK_LOG_WILDCARD = f"{MQTT_PREFIX}/tasks/+/log"
