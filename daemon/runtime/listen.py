"""Open a service's HTTP listening socket, or say in one sentence why it cannot.

A port already in use, an address that is not this host's or a port below 1024 without
the right is the operator's to fix: it stops the service with the address and the setting
named (a :class:`~events.errors.ConfigError`), not a traceback.
"""

from __future__ import annotations

from aiohttp import web

from events.errors import ConfigError


async def start_site(runner: web.AppRunner, host: str, port: int, setting: str) -> None:
    """Listen on ``host:port`` for ``runner``; ``setting`` names where the port is set."""
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except (OSError, OverflowError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(f"cannot listen on {host}:{port}: {why} (set {setting} to a free "
                          "port, or 0 for any)") from None
