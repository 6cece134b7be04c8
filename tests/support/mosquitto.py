"""A private Mosquitto for tests that stop, kill or reconfigure the MQTT broker."""

from __future__ import annotations

import os
import shutil
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.ports import free_port
from tests.support.process import Child
from tests.support.rabbitmq import BrokerStartError


def mosquitto_binary() -> str | None:
    found = shutil.which("mosquitto")
    if found:
        return found
    return "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None


@dataclass(frozen=True)
class MqttTls:
    """A TLS listener; ``require_client_certificate`` refuses clients without one."""

    port: int
    certfile: Path
    keyfile: Path
    cafile: Path
    require_client_certificate: bool = True


@dataclass
class MosquittoBroker:
    """One Mosquitto process with its own config, port and (no) persistence; anonymous
    clients are allowed unless ``extra`` says otherwise. ``plain`` False leaves only TLS."""

    directory: Path
    host: str = "127.0.0.1"
    port: int = 0
    netns: str | None = None
    tls: MqttTls | None = None
    plain: bool = True
    extra: str = ""
    child: Child | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.port:
            self.port = free_port(self.host) if self.netns is None else 1883

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    @property
    def tls_url(self) -> str:
        if self.tls is None:
            raise ValueError("this broker has no TLS listener")
        return f"mqtts://{self.host}:{self.tls.port}"

    @property
    def pid(self) -> int:
        if self.child is None:
            raise RuntimeError("mosquitto was never started")
        return self.child.pid

    def _config(self) -> str:
        lines = ["per_listener_settings false", "allow_anonymous true", "persistence false",
                 "log_dest stderr", "log_type error", "log_type warning", "log_type notice"]
        if os.geteuid() == 0:
            # As root it would switch to the "mosquitto" user, who cannot read pytest's
            # private temporary directory.
            lines.append("user root")
        if self.plain:
            lines.append(f"listener {self.port} {self.host}")
        if self.tls is not None:
            lines += [f"listener {self.tls.port} {self.host}",
                      f"cafile {self.tls.cafile}", f"certfile {self.tls.certfile}",
                      f"keyfile {self.tls.keyfile}", "tls_version tlsv1.2",
                      "require_certificate "
                      + ("true" if self.tls.require_client_certificate else "false")]
        return "\n".join(lines) + "\n" + self.extra

    def start(self, timeout: float = 20.0) -> MosquittoBroker:
        binary = mosquitto_binary()
        if binary is None:
            raise BrokerStartError("mosquitto is not installed")
        self.directory.mkdir(parents=True, exist_ok=True)
        config = self.directory / "mosquitto.conf"
        config.write_text(self._config())
        self.child = Child("mosquitto", [binary, "-c", str(config)],
                           log=self.directory / "mosquitto.log", netns=self.netns).start()
        port = self.port if self.plain else self.tls.port if self.tls else self.port
        deadline = time.monotonic() + timeout
        while not self._listening(port):
            if not self.child.running or time.monotonic() > deadline:
                self.child.stop(timeout=5)
                raise BrokerStartError(f"mosquitto did not start: {self.child.tail()}")
            time.sleep(0.05)
        return self

    def _listening(self, port: int) -> bool:
        try:
            socket.create_connection((self.host, port), timeout=0.5).close()
            return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.child is not None:
            self.child.stop(timeout=10)

    def kill(self) -> None:
        if self.child is not None:
            self.child.kill()
