"""Declarations: what is accepted, what is refused (naming the field), and the content key."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.buildenv import declaration
from daemon.buildenv.cli import bundled_declaration
from daemon.buildenv.errors import BuildEnvError


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "env.toml"
    path.write_text(text)
    return path


def test_full_declaration_is_read(tmp_path: Path) -> None:
    decl = declaration.load(_write(tmp_path, """
name = "farm-c"
arch = "x86_64"
source_date_epoch = 1600000000
[base]
suite = "bookworm"
variant = "buildd"
packages = ["gcc", "make"]
suites = ["bookworm-updates"]
exclude = ["/usr/share/doc/*"]
keep = ["/usr/share/doc/*/copyright"]
[layer]
index = "http://127.0.0.1:1/volatile/x86_64/current/index.json"
packages = ["libgreet-devel"]
key = "keys/vessel.pub"
"""))
    assert decl.name == "farm-c" and decl.dpkg_arch == "amd64"
    assert decl.base is not None and decl.base.variant == "buildd"
    assert decl.base.suites == ["bookworm-updates"]
    assert decl.layer is not None and decl.layer.key == str(tmp_path / "keys" / "vessel.pub")


def test_bundled_declaration_is_valid_and_small() -> None:
    decl = declaration.load(bundled_declaration())
    assert decl.base is not None and decl.base.variant == "minbase"
    assert {"gcc", "make", "pkgconf", "libc6-dev"} <= set(decl.base.packages)


@pytest.mark.parametrize(("text", "complaint"), [
    ('name = "x"\n', "neither [base] nor [layer]"),
    ('name = "a b"\n[base]\nsuite = "bookworm"\n', "name 'a b'"),
    ('name = "x"\n[base]\nsuite = "bookworm"\nvariant = "huge"\n', "base.variant 'huge'"),
    ('name = "x"\n[base]\nsuite = "bookworm"\npackages = ["gcc; rm -rf /"]\n', "base.packages"),
    ('name = "x"\n[base]\nsuite = "bookworm"\nmirror = "ftp://x"\n', "base.mirror"),
    ('name = "x"\n[base]\nsuite = "bookworm"\nexclude = ["usr/share"]\n', "absolute path"),
    ('name = "x"\n[base]\nsuite = "bookworm"\ncolour = "red"\n', "colour"),
    ('name = "x"\narch = "pdp11"\n[base]\nsuite = "bookworm"\n', "arch 'pdp11'"),
    ('name = "x"\n[layer]\nindex = "http://h/i.json"\npackages = []\n', "layer.packages"),
    ('name = "x"\n[base\n', "not valid TOML"),
])
def test_bad_declarations_are_refused_with_the_field(tmp_path: Path, text: str,
                                                    complaint: str) -> None:
    with pytest.raises(BuildEnvError, match=r"env\.toml") as caught:
        declaration.load(_write(tmp_path, text))
    assert complaint in str(caught.value)


def test_key_follows_content_not_spelling(tmp_path: Path) -> None:
    a = declaration.load(_write(tmp_path, 'name = "x"\n[base]\nsuite = "bookworm"\n'))
    b = declaration.parse({"base": {"variant": "minbase", "suite": "bookworm"}, "name": "x"},
                          origin="dict")
    c = declaration.parse({"name": "x", "base": {"suite": "bookworm", "packages": ["gcc"]}},
                          origin="dict")
    assert a.key() == b.key()
    assert a.key() != c.key()


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(BuildEnvError, match="does not exist"):
        declaration.load(tmp_path / "nope.toml")


def test_a_parent_environment_is_relative_to_the_file_and_excludes_a_base(
        tmp_path: Path) -> None:
    layered = declaration.load(_write(tmp_path, 'name = "x"\nparent = "envs/base.tar.zst"\n'
                                                '[layer]\nindex = "i.json"\npackages = ["a"]\n'))
    assert layered.parent == str(tmp_path / "envs/base.tar.zst")
    with pytest.raises(BuildEnvError, match="declares both \\[base\\] and parent"):
        declaration.load(_write(tmp_path, 'name = "x"\nparent = "b.tar.zst"\n'
                                          '[base]\nsuite = "bookworm"\n'))
