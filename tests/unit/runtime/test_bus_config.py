"""[bus] url names one broker or the nodes of a cluster, in the file or the environment."""

from __future__ import annotations

from pathlib import Path

from daemon.runtime.config import load_config
from events.amqp import AmqpBus
from events.connect import bus_from_url

NODES = ["amqp://svc:pw@rmq1:5672/cairn", "amqp://svc:pw@rmq2:5672/cairn",
         "amqp://svc:pw@rmq3:5672/cairn"]


def test_a_list_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "summit.toml"
    path.write_text("[bus]\nurl = [" + ", ".join(f'"{u}"' for u in NODES) + "]\n")
    config = load_config(path, env={})
    assert config.bus.url == NODES
    bus = bus_from_url(config.bus.url)
    assert isinstance(bus, AmqpBus) and bus.urls == NODES


def test_comma_separated_in_the_environment() -> None:
    config = load_config(None, env={"CAIRN_BUS_URL": ",".join(NODES)})
    bus = bus_from_url(config.bus.url)
    assert isinstance(bus, AmqpBus) and bus.urls == NODES
