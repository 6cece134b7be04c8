"""The ``noop`` backend: empty packages named and providing what the committed manifest says.

For dry runs and benchmarks of the whole farm: no subprocess, no sources, no build
dependencies, just the packages of ``manifest.<arch>.jsonc`` (Serpent's format) with their
``depends`` and ``provides``. A recipe without a manifest yields one empty package named
after the source.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from daemon.package import FileType, InvalidName, Manifest, check_name, name_provider

from .backend import BuildContext, BuildProducts, DeclaredPackage
from .errors import RecipeError

#: A string (group 1, kept; may run to the end of the text; written as "unrolled loop" so
#: long strings cost one C scan), a line comment or a block comment (removed; an
#: unterminated one runs to the end).
_JSONC_TOKEN = re.compile(r'("[^"\\]*(?:\\.[^"\\]*)*(?:"|\\?\Z))|//[^\n]*|/\*.*?(?:\*/|\Z)',
                          re.DOTALL)


def strip_jsonc(text: str) -> str:
    """Remove ``//`` and ``/* */`` comments outside strings (JSON with comments -> JSON).

    One regular expression rather than a character loop: a builder strips a manifest of
    thousands of lines per noop build, and the loop was most of a mass rebuild's build CPU."""
    return _JSONC_TOKEN.sub(r"\1", text)  # a string is group 1; a comment matches no group


def load_manifest_packages(path: Path) -> tuple[DeclaredPackage, ...]:
    """The packages a Serpent ``manifest.<arch>.jsonc`` lists."""
    try:
        doc: Any = json.loads(strip_jsonc(path.read_text(encoding="utf-8")))
    except (OSError, ValueError) as exc:
        raise RecipeError(f"cannot read manifest {path.name}: {exc}") from exc
    packages = doc.get("packages") if isinstance(doc, dict) else None
    if not isinstance(packages, dict):
        raise RecipeError(f"manifest {path.name} has no 'packages' mapping")
    declared = []
    for key, spec in sorted(packages.items()):
        if not isinstance(spec, dict):
            raise RecipeError(f"manifest {path.name}: package {key!r} is not a mapping")
        try:
            name = check_name(str(spec.get("name", key)), what=f"manifest {path.name}: package")
        except InvalidName as exc:
            raise RecipeError(str(exc)) from None
        declared.append(DeclaredPackage(
            name=name,
            depends=tuple(str(d) for d in spec.get("depends", [])),
            provides=tuple(str(p) for p in spec.get("provides", [])),
        ))  # fmt: skip
    return tuple(declared)


class NoopBackend:
    name = "noop"
    needs_inputs = False

    def build(self, ctx: BuildContext) -> BuildProducts:
        manifest = ctx.tree.recipe_dir / f"manifest.{ctx.arch}.jsonc"
        if manifest.is_file():
            declared = load_manifest_packages(manifest)
        else:
            declared = (DeclaredPackage(name=ctx.recipe.name),)
        ctx.log.phase(f"noop: declaring {len(declared)} empty package(s) from {manifest.name}")
        summary = ctx.recipe.summary
        return BuildProducts(
            declared=tuple(
                DeclaredPackage(p.name, summary, p.depends, p.provides) for p in declared
            )
        )



def render_manifest(
    source: str, version: str, release: int, build_depends: list[str], manifests: list[Manifest]
) -> str:
    """A Serpent ``manifest.<arch>.jsonc`` for built packages, to commit beside stone.yaml.

    Like boulder's, it lists per package its build-depends, depends, files and provides
    (without the implicit ``name(x)`` and plain-name providers).
    """
    packages = {
        m.name: {
            "build-depends": sorted(build_depends),
            "depends": sorted(m.depends),
            "files": sorted(f"/{f.path}" for f in m.files if f.type is not FileType.DIR),
            "name": m.name,
            "provides": sorted(p for p in m.provides if p not in (m.name, name_provider(m.name))),
        }
        for m in sorted(manifests, key=lambda m: m.name)
    }
    doc = {
        "manifest-version": "0.2",
        "packages": packages,
        "source-name": source,
        "source-release": str(release),
        "source-version": version,
    }
    return (
        "/** Human readable report. This is not consumed by boulder */\n"
        + json.dumps(doc, indent="\t", sort_keys=True)
        + "\n"
    )
