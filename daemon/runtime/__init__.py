"""The runtime every cairn daemon shares: configuration, logging, lifecycle, sd_notify, health.

A service shell is a class with ``name``, ``async start()`` and ``async stop(timeout)``; its
command does::

    config = load_config(args.config, SummitConfig)
    configure_logging(config.log, service="summit")
    health = Health("summit")
    service = Summit(config, health)
    server = HealthServer(health, config.health.host, config.health.port)
    return await run_service(service, health=health,
                             health_server=server if config.health.enabled else None)
"""

from daemon.runtime.config import (
    BaseConfig,
    BusSection,
    ConfigKeyError,
    HealthSection,
    LogFormat,
    LogLevel,
    LogSection,
    MqttSection,
    Section,
    StateSection,
    load_config,
)
from daemon.runtime.health import Health, HealthError, HealthServer, Phase
from daemon.runtime.lifecycle import Service, run_service
from daemon.runtime.logging import configure_logging
from daemon.runtime.sdnotify import Notifier

__all__ = [
    "BaseConfig",
    "BusSection",
    "ConfigKeyError",
    "Health",
    "HealthError",
    "HealthSection",
    "HealthServer",
    "LogFormat",
    "LogLevel",
    "LogSection",
    "MqttSection",
    "Notifier",
    "Phase",
    "Section",
    "Service",
    "StateSection",
    "configure_logging",
    "load_config",
    "run_service",
]
