"""The bundled examples built by builders on two other hosts: vessel (on the control host)
pulls their artefacts over the builders' addresses, and their builds fetch dependencies
from vessel's address. Builders are firewalled to what a builder may reach, so a service
that assumed ``127.0.0.1`` across hosts (or any other shortcut) would fail here."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.e2e.farm import recipe_repo
from tests.support.hostfarm import ARTEFACT_PORT, VESSEL_PORT, HostFarm, all_final
from tests.support.hosts import Network

pytestmark = [pytest.mark.hosts, pytest.mark.rabbitmq, pytest.mark.mqtt, pytest.mark.slow,
              pytest.mark.timeout(600)]

EXAMPLES = {"libgreet", "greet", "greet-banner", "diamond-a", "diamond-b", "diamond-c",
            "diamond-d"}


@pytest.fixture
def farm(host_network: Network, tmp_path: Path) -> Iterator[HostFarm]:
    """The farm with every connection mutual TLS (the brokers listening for TLS only, each
    service with a certificate of the test's CA). The same farm over plain AMQP and MQTT
    builds the examples in tests/hosts/test_trial_farm.py (deploy/trial-farm runs this
    HostFarm) and the slow recipe across hosts in test_partitions.py."""
    repo = recipe_repo(tmp_path / "forge" / "recipes")
    running = HostFarm(host_network, tmp_path / "state", repo, builders=2, brokers=1,
                       tls=True)
    try:
        running.start()
        yield running
    finally:
        running.stop()


async def test_examples_built_on_two_builder_hosts_pulled_by_vessel_over_the_network(
        farm: HostFarm) -> None:
    tasks = await farm.wait_tasks(all_final(len(EXAMPLES)))
    assert {t["source"] for t in tasks} == EXAMPLES
    assert all(t["state"] == "completed" for t in tasks), tasks

    events = farm.journal()
    builders = {h.address: h.name for h in farm.builder_hosts}
    done = [e["data"] for e in events if e["type"] == "build-done"]
    artefact_hosts = {urlsplit(a["url"]).netloc for d in done for a in d["artefacts"]}
    # Every artefact is served by the builder that made it, at that builder's address.
    assert artefact_hosts <= {f"{address}:{ARTEFACT_PORT}" for address in builders}
    assert {d["builder"] for d in done} == set(builders.values()), (
        "both builder hosts should have built something")
    for build in done:
        for artefact in build["artefacts"]:
            assert builders[urlsplit(artefact["url"]).hostname or ""] == build["builder"]

    # Builds were told to fetch dependencies from vessel's address (the only repository
    # a firewalled builder can reach), and the ones with dependencies succeeded.
    vessel = f"{farm.control_host.address}:{VESSEL_PORT}"
    ready = [e["data"] for e in events if e["type"] == "task-ready"]
    assert ready and {urlsplit(r["index_url"]).netloc for r in ready} == {vessel}
    index = await farm.index()
    names = sorted(p["name"] for p in index["packages"])
    assert {"greet", "libgreet", "greet-banner"} <= set(names)
    assert len(names) == len(set(names))
    published = [e for e in events if e["type"] == "package-published"]
    assert len(published) == len(EXAMPLES)
