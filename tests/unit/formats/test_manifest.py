"""The one reader and writer of manifest.<arch>.jsonc: comments anywhere, lines in errors, and
what a build writes reads back the same."""

from __future__ import annotations

import json

import pytest

from daemon.formats.manifest import (
    HEADER,
    MAX_MANIFEST_BYTES,
    normalise,
    parse_manifest,
    render_manifest,
)
from daemon.formats.stone import RecipeError
from daemon.package import FileEntry, FileType, Manifest


def test_comments_anywhere_and_providers() -> None:
    data = b"""/** header */
{
  // a line comment
  "manifest-version": "0.2",
  "packages": {
    "acl": {"name": "acl", "provides": ["binary(chacl)", "name(acl-doc)"],
            "depends": ["soname(libc.so.6(x86_64))"], "build-depends": ["m4"],
            "files": ["/usr/bin/chacl", "http://not//a/comment", "/* not */"]},
    /* a block
       comment */
    "acl-devel": {"name": "acl-devel", "provides": ["pkgconfig(libacl)"]}
  },
  "source-name": "acl"
}"""
    parsed = parse_manifest(data, "a/acl/manifest.x86_64.jsonc")
    assert parsed.providers() == {"acl", "acl-devel", "acl-doc", "binary(chacl)",
                                  "pkgconfig(libacl)"}
    assert parsed.packages[0].files == ("/usr/bin/chacl", "http://not//a/comment", "/* not */")
    assert parsed.source_name == "acl"
    assert normalise("name(x)") == "x" and normalise("soname(x)") == "soname(x)"
    assert parse_manifest(data, "m", keep_files=False).packages[0].files == ()


@pytest.mark.parametrize(("data", "line"), [
    (b'/* c */\n{\n "packages": {\n  "a": {"name": "a",}\n }\n}\n', 4),
    (b'{"packages": {"a": {"name": "a"}}} /* unterminated', 1),
    (b'{"packages": [1]}', 1),
    (b'{"packages": {"../x": {}}}', 1),
])
def test_a_broken_manifest_names_its_line(data: bytes, line: int) -> None:
    with pytest.raises(RecipeError) as caught:
        parse_manifest(data, "m.jsonc")
    assert caught.value.line == line and caught.value.file == "m.jsonc"


def test_a_huge_manifest_is_refused() -> None:
    with pytest.raises(RecipeError, match="at most"):
        parse_manifest(b" " * (MAX_MANIFEST_BYTES + 1), "m.jsonc")


def test_what_a_build_writes_reads_back() -> None:
    files = [FileEntry(path="usr", type=FileType.DIR, mode=0o755),
             FileEntry(path="usr/bin/x", type=FileType.FILE, mode=0o755, size=1, sha256="0" * 64)]
    built = [Manifest(name="x", version="1.10", release=2, build_release=1, arch="x86_64",
                      source="x", depends=["soname(libc.so.6(x86_64))"],
                      provides=["x", "name(x)", "binary(x)"], files=files)]
    text = render_manifest("x", "1.10", 2, ["binary(make)", "binary(cc)"], built)
    assert text.startswith(HEADER)
    doc = json.loads(text.removeprefix(HEADER))
    assert doc["source-version"] == "1.10" and doc["source-release"] == "2"
    (package,) = parse_manifest(text.encode(), "m").packages
    assert package.name == "x" and package.provides == ("binary(x)",)
    assert package.files == ("/usr/bin/x",)
    assert package.build_depends == ("binary(cc)", "binary(make)")
