"""The committed deployment files are exactly what the generators write from the code, so
the topology in events/topology.py and deploy/ cannot drift apart."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from daemon.deploy.mosquitto import render_acl
from daemon.deploy.rabbitmq import DeployError, accounts, build_definitions, grant, render
from events import topology
from events.amqp import queue_arguments

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
#: The builders of the example ACL committed in deploy/mosquitto/acl.
EXAMPLE_BUILDERS = ("builder-1", "builder-2")


def _cairn(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "daemon.cli", *args], capture_output=True,
                          text=True, timeout=60, check=False, cwd=DEPLOY.parent)


def test_committed_definitions_equal_the_generator() -> None:
    committed = (DEPLOY / "rabbitmq" / "definitions.json").read_text()
    assert committed == render(build_definitions()), (
        "deploy/rabbitmq/definitions.json is stale: run "
        "`cairn deploy rabbitmq-definitions -o deploy/rabbitmq/definitions.json`")


def test_committed_acl_equals_the_generator() -> None:
    assert (DEPLOY / "mosquitto" / "acl").read_text() == render_acl(EXAMPLE_BUILDERS)


def test_cli_check_passes_on_the_committed_files_and_fails_on_a_stale_one(
        tmp_path: Path) -> None:
    done = _cairn("deploy", "rabbitmq-definitions", "--check", "-o",
                  "deploy/rabbitmq/definitions.json")
    assert done.returncode == 0, done.stderr
    stale = tmp_path / "definitions.json"
    stale.write_text((DEPLOY / "rabbitmq" / "definitions.json").read_text()
                     .replace('"x-delivery-limit": 9', '"x-delivery-limit": 5'))
    done = _cairn("deploy", "rabbitmq-definitions", "--check", "-o", str(stale))
    assert done.returncode == 1 and "out of date" in done.stderr


def test_queues_carry_the_arguments_the_code_declares() -> None:
    queues = {q["name"]: q for q in build_definitions()["queues"]}
    for sub in (topology.SUMMIT, topology.VESSEL, topology.JOURNAL):
        assert queues[sub.queue]["arguments"] == queue_arguments(sub)
        assert queues[sub.dead_letter_queue]["arguments"] == {"x-queue-type": "quorum"}


def test_committed_accounts_have_no_password() -> None:
    """No secret in git: the accounts cannot log in until an operator sets a password."""
    users = json.loads((DEPLOY / "rabbitmq" / "definitions.json").read_text())["users"]
    assert {u["name"] for u in users} == {a.user for a in accounts()}
    assert {u["password_hash"] for u in users} == {""}


def test_builder_topic_permissions_name_only_its_three_types() -> None:
    """Python's re agrees with PCRE on these simple patterns; the broker test proves it."""
    builder = next(a for a in accounts() if a.user == "avalanche")
    write = re.compile(grant(builder).topic_write)
    allowed = [k for k in ("build-started.x86_64", "build-done.x86_64", "builder-seen.b1",
                           "package-published.volatile", "task-ready.b1",
                           "build-accepted.volatile", "build-admitted.b1",
                           "build-done.x86_64.extra") if write.match(k)]
    assert allowed == ["build-started.x86_64", "build-done.x86_64", "builder-seen.b1"]
    queues = re.compile(grant(builder).configure)
    assert queues.match("cairn.builder.b1") and queues.match("cairn.builder.b1.dead")
    assert not queues.match("cairn.summit") and not queues.match("cairn.builder.b1.x.y")


def test_bad_arguments_are_refused_with_a_reason(tmp_path: Path) -> None:
    with pytest.raises(DeployError, match="no such account"):
        build_definitions(password_hashes={"mallory": "x"})
    done = _cairn("deploy", "mosquitto-acl", "--builder", "summit")
    assert done.returncode == 2 and "summit's account" in done.stderr


@pytest.mark.parametrize("name", ["summit", "vessel", "journal", "avalanche"])
def test_example_configs_load_with_the_runtime_loader(name: str) -> None:
    """Each example loads with its own daemon's configuration type (unknown keys refused)."""
    from daemon.commands.daemons import DAEMONS
    from daemon.runtime.config import load_config

    config_type, _ = DAEMONS[name][1]()
    config = load_config(DEPLOY / "config" / f"{name}.toml", config_type, env={})
    assert config.bus.url.startswith("amqp://") and "@" in config.bus.url
    assert config.state.dir == f"/var/lib/cairn/{name}"
