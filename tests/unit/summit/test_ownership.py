"""Which source may publish which package names, as summit decides from the recipes."""

from __future__ import annotations

from daemon.summit.planning.ownership import check_packages

DECLARED = {"victim": {"victim", "evil"}, "shared-data": {"evil", "victim"},
            "evil-tools": {"evil"}, "victim-devel": {"victim"}}


def declared_by(name: str) -> set[str]:
    return DECLARED.get(name, set())


def test_a_sources_own_name_is_its_own_whoever_else_declares_it() -> None:
    assert check_packages("victim", ["victim", "victim-devel"], declared_by) == (
        "victim", "victim-devel")
    assert check_packages("evil", ["victim"], declared_by) == (
        "refused to publish the build of 'evil': package 'victim' belongs to source 'victim'")


def test_a_name_two_sources_declare_is_refused_naming_both() -> None:
    for source, other in (("evil", "victim"), ("victim", "evil")):
        assert check_packages(source, ["shared-data"], declared_by) == (
            f"refused to publish the build of {source!r}: package 'shared-data' is declared "
            f"by both {source!r} and {other!r}: one recipe must drop it")


def test_undeclared_names_outside_the_family_are_refused() -> None:
    assert check_packages("evil", ["evil-tools", "evil-extra"], declared_by) == (
        "evil-extra", "evil-tools")
    assert "package 'openssl' is not declared by 'evil'" in str(
        check_packages("evil", ["openssl"], declared_by))
