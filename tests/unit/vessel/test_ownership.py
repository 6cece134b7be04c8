"""The ownership rule on its own: who may publish a package name or a provider."""

from __future__ import annotations

import pytest

from daemon.vessel.errors import ImportRefused
from daemon.vessel.ownership import Holder, Offer, judge

WHERE = "volatile/x86_64"
VTOOL = [Offer("vtool", "vtool"), Offer("name(vtool)", "vtool"),
         Offer("binary(vtool)", "vtool")]


def test_free_names_and_the_sources_own_names_pass() -> None:
    held = {"vtool": [Holder("victim", "vtool", "a" * 64)],
            "binary(vtool)": [Holder("victim", "vtool", "a" * 64)]}
    assert judge("victim", WHERE, VTOOL, held, {}) == frozenset()
    assert judge("newcomer", WHERE, [Offer("fresh", "fresh")], held, {}) == frozenset()


def test_the_package_name_is_judged_before_its_providers() -> None:
    held = {name: [Holder("victim", "vtool", "a" * 64)]
            for name in ("vtool", "name(vtool)", "binary(vtool)")}
    with pytest.raises(ImportRefused, match=r"^package vtool is published in volatile/x86_64 by "
                                            r"source victim, not evil"):
        judge("evil", WHERE, VTOOL, held, {})


def test_a_declared_owner_evicts_every_holder_of_its_names() -> None:
    held = {"vtool": [Holder("evil", "vtool", "e" * 64)],
            "name(vtool)": [Holder("evil", "vtool", "e" * 64)],
            "binary(vtool)": [Holder("evil", "vtool", "e" * 64),
                              Holder("mallory", "vt", "m" * 64)]}
    declared = {"vtool": "victim", "binary(vtool)": "victim"}
    assert judge("victim", WHERE, VTOOL, held, declared) == {"e" * 64, "m" * 64}


def test_name_provider_follows_the_declared_owner_of_the_package_name() -> None:
    with pytest.raises(ImportRefused, match=r"^provider name\(vtool\) \(of package other\) "
                                            "belongs to source victim, whose recipe declares "
                                            "it, not to evil$"):
        judge("evil", WHERE, [Offer("name(vtool)", "other")], {}, {"vtool": "victim"})
