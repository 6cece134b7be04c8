"""Summit reads what a build environment provides from vessel's signed record over real
HTTP (vessel's own server): checked with vessel's key when it has it, refused when the
signature does not verify, and asked again (not before ``retry_s``) when vessel lacks it."""

from __future__ import annotations

from pathlib import Path

from daemon.summit.envprovides import EnvironmentCatalogue
from daemon.vessel import minisign
from daemon.vessel.environments import EnvironmentStore
from tests.unit.buildenv.support import packed


async def test_provides_are_read_from_the_signed_record(
        tmp_path: Path, served_vessel: tuple[EnvironmentStore, str]) -> None:
    store, url = served_vessel
    record, archive = packed(tmp_path, "one")
    now = [0.0]
    catalogue = EnvironmentCatalogue(url, store.layout.public_key, retry_s=10.0,
                                     clock=lambda: now[0])
    assert await catalogue.fetch(None) == frozenset()
    assert await catalogue.fetch(record.digest) is None  # not pushed yet
    store.push(archive)
    assert await catalogue.fetch(record.digest) is None  # not asked again so soon
    now[0] = 11.0
    provides = await catalogue.fetch(record.digest)
    assert provides == frozenset(record.manifest.provides) and "binary(tool)" in provides
    assert catalogue.known(record.digest) == provides
    unchecked = EnvironmentCatalogue(url)
    assert await unchecked.fetch(record.digest) == provides


async def test_a_record_signed_by_another_key_is_refused(
        tmp_path: Path, served_vessel: tuple[EnvironmentStore, str]) -> None:
    store, url = served_vessel
    record, archive = packed(tmp_path, "one")
    store.push(archive)
    other = tmp_path / "other.pub"
    other.write_text(minisign.load_or_create_key(tmp_path / "other.key").public.to_file_text())
    assert await EnvironmentCatalogue(url, other).fetch(record.digest) is None
