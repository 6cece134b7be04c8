"""AMQP 0-9-1 topic matching (``*`` one word, ``#`` zero or more words), for the embedded
broker; RabbitMQ does its own."""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=4096)
def matches(pattern: str, routing_key: str) -> bool:
    """Whether a binding pattern matches a routing key, as a topic exchange decides."""
    words = pattern.split(".")
    keys = routing_key.split(".")
    # reachable[j]: the pattern so far can consume exactly the first j words of the key.
    reachable = [True] + [False] * len(keys)
    for word in words:
        if word == "#":
            for j in range(1, len(keys) + 1):
                reachable[j] = reachable[j] or reachable[j - 1]
            continue
        nxt = [False] * (len(keys) + 1)
        for j in range(len(keys)):
            if reachable[j] and (word == "*" or word == keys[j]):
                nxt[j + 1] = True
        reachable = nxt
    return reachable[len(keys)]
