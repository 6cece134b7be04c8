"""Every service's subscriptions, defined once.

The services subscribe with these, ``deploy/rabbitmq/definitions.json`` is generated from
them, and the tests import them: a queue name, binding or limit is never typed twice.
"""

from __future__ import annotations

from events.bus import Subscription
from events.names import EventType, Queue, binding, control_queue, work_queue

#: A task that has killed this many builders (each one died holding it) is dead-lettered.
WORK_DELIVERY_LIMIT = 3

SUMMIT = Subscription(
    queue=Queue.SUMMIT,
    bindings=tuple(binding(t) for t in (
        EventType.COMMIT_SEEN, EventType.BUILD_STARTED, EventType.BUILD_DONE,
        EventType.PACKAGE_PUBLISHED, EventType.PUBLISH_FAILED,
    )),
    prefetch=64,
)

VESSEL = Subscription(
    queue=Queue.VESSEL,
    bindings=(binding(EventType.BUILD_DONE),),
    prefetch=4,
)

JOURNAL = Subscription(
    queue=Queue.JOURNAL,
    bindings=tuple(binding(t) for t in EventType),
    prefetch=64,
)


def work(arch: str, slots: int = 1) -> Subscription:
    """The builders' shared work queue for one architecture; prefetch = build slots."""
    return Subscription(
        queue=work_queue(arch),
        bindings=(binding(EventType.TASK_READY, arch),),
        prefetch=slots,
        work_queue=True,
        delivery_limit=WORK_DELIVERY_LIMIT,
        max_attempts=1,
    )


def work_dead_letters(arch: str) -> Subscription:
    """Summit reads the work queue's dead letters: tasks that kept killing builders."""
    return Subscription(queue=work(arch).dead_letter_queue, bindings=(), prefetch=16,
                        dead_letter_reader=True)


def control(builder: str, arch: str) -> Subscription:
    """A builder's private queue: cancellations of the tasks it may be running, and the
    repository's verdicts, after which it may drop the artefacts it was serving."""
    return Subscription(
        queue=control_queue(builder),
        bindings=(binding(EventType.TASK_CANCELLED, arch),
                  binding(EventType.PACKAGE_PUBLISHED), binding(EventType.PUBLISH_FAILED)),
        prefetch=16,
        transient=True,
    )
