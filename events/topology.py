"""Every service's subscriptions, defined once.

The services subscribe with these, ``deploy/rabbitmq/definitions.json`` is generated from
them, and the tests import them: a queue name, binding or limit is never typed twice.
"""

from __future__ import annotations

from events.bus import Subscription
from events.names import EventType, Queue, binding, builder_queue

SUMMIT = Subscription(
    queue=Queue.SUMMIT,
    bindings=tuple(binding(t) for t in (
        EventType.COMMIT_SEEN, EventType.BUILDER_SEEN, EventType.BUILD_STARTED,
        EventType.BUILD_DONE, EventType.PACKAGE_PUBLISHED, EventType.PUBLISH_FAILED,
    )),
    prefetch=64,
)

#: Vessel publishes only what summit accepted, never a builder's own report. Up to 16 imports
#: download at once; those ready while a publication runs go into the next one together.
VESSEL = Subscription(
    queue=Queue.VESSEL,
    bindings=(binding(EventType.BUILD_ACCEPTED),),
    prefetch=16,
)

JOURNAL = Subscription(
    queue=Queue.JOURNAL,
    bindings=tuple(binding(t) for t in EventType),
    prefetch=64,
)


def builder(name: str) -> Subscription:
    """A builder's own queue: what summit addresses to it (assignments, admissions,
    cancellations) and the repository's verdicts, after which it drops the artefacts it was
    serving. Durable, so nothing addressed to a builder is lost while it restarts."""
    return Subscription(
        queue=builder_queue(name),
        bindings=(binding(EventType.TASK_READY, name), binding(EventType.BUILD_ADMITTED, name),
                  binding(EventType.TASK_CANCELLED, name),
                  binding(EventType.PACKAGE_PUBLISHED), binding(EventType.PUBLISH_FAILED)),
        prefetch=64,
    )
