"""A work-queue consumer in its own OS process, for the SIGKILL test.

Usage: ``python consumer_process.py URL QUEUE BINDING MARKER_DIR``. Prints ``ready`` once it
consumes; for each event it handles it creates ``MARKER_DIR/<event id>`` and then holds the
message forever, so that the test can kill it mid-handler.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

from events.amqp import AmqpBus
from events.bus import Subscription
from events.envelope import Event


async def main(url: str, queue: str, binding: str, marker_dir: Path) -> None:
    bus = AmqpBus(url, name="contract-victim")
    await bus.connect()

    async def hold(event: Event[Any]) -> None:
        (marker_dir / event.id).touch()
        await asyncio.Event().wait()

    await bus.subscribe(Subscription(queue, (binding,), prefetch=1, work_queue=True), hold)
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], Path(sys.argv[4])))
