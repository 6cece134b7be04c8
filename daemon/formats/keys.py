"""What a builder does with each key a recipe writes: applied, decided when it builds, refused
by name, or ignored as boulder ignores it. Nothing is dropped without a word: the build log
lists every key that is not simply applied, and a refused key fails the task naming it.

====================  =====================================================================
applied               identity, metadata, dependencies (``checkdeps`` are installed and
                      ``check`` runs), steps, ``environment``, ``profiles`` (per target),
                      ``upstreams``, ``packages``/``paths``/``conflicts``, ``architectures``
                      (summit plans only the arches it names), ``tuning`` (compiler and
                      linker flags), ``strip: false`` (cairn never strips)
at build time         ``toolchain`` (``gnu``: gcc; ``llvm``, the default: clang and lld — a
                      recipe that does not name one builds with gcc where the build
                      environment has no clang, and the log says so), ``emul32`` (a 32-bit
                      pass first, or the task fails when the environment cannot build 32-bit
                      programs), ``networking: true`` (network in the sandbox only where the
                      builder's ``allow_networking`` is set; otherwise the task fails)
refused (:data:`REFUSED`)  the task fails naming the key and why
ignored               keys outside the format (e.g. ``tune``) and unknown upstream options:
                      boulder ignores them; the log names them
====================  =====================================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from .stone import STEPS, Recipe

#: Keys this builder cannot honour, and why. A recipe that sets one fails naming it.
REFUSED: dict[str, str] = {
    "workload": "profile-guided builds (build, run the workload, rebuild with the profile) "
                "are not supported by this builder",
    "cspgo": "context-sensitive profile-guided optimisation needs a workload, which this "
             "builder does not run",
    "samplepgo": "sample-based profile-guided optimisation needs a workload, which this "
                 "builder does not run",
    "compressman": "this builder does not compress manual pages",
    "mold": "this builder does not link with mold",
    "strip": "this builder does not strip binaries or split debug information "
             "(strip: false is what it does)",
}
#: Keys whose outcome depends on the builder and its build environment.
AT_BUILD = frozenset({"toolchain", "emul32", "networking"})


class Verdict(StrEnum):
    APPLIED = "applied"
    AT_BUILD = "at build time"
    REFUSED = "refused"
    IGNORED = "ignored"


@dataclass(frozen=True, slots=True)
class KeyUse:
    key: str
    verdict: Verdict
    why: str = ""


def review(recipe: Recipe) -> tuple[KeyUse, ...]:
    """Every key the recipe writes, with what happens to it (see the module docstring)."""
    unknown = {k for k, _ in recipe.unknown}
    uses: list[KeyUse] = []
    for key in recipe.keys:
        uses.append(_verdict(recipe, key, unknown))
    if "workload" not in recipe.keys and any(p.workload for _, p in recipe.profiles):
        uses.append(KeyUse("workload", Verdict.REFUSED, REFUSED["workload"]))
    for upstream in recipe.upstreams:
        for option in upstream.unknown:
            uses.append(KeyUse(f"upstreams: {option}", Verdict.IGNORED,
                               f"not an upstream option (on {upstream.url}); boulder "
                               "ignores it too"))  # fmt: skip
    return tuple(uses)


def _verdict(recipe: Recipe, key: str, unknown: set[str]) -> KeyUse:
    if key in unknown:
        return KeyUse(key, Verdict.IGNORED, "not part of the stone.yaml format; boulder "
                                            "ignores it too")  # fmt: skip
    if key in REFUSED and _set(recipe, key):
        return KeyUse(key, Verdict.REFUSED, REFUSED[key])
    if key in AT_BUILD:
        return KeyUse(key, Verdict.AT_BUILD)
    return KeyUse(key, Verdict.APPLIED)


def _set(recipe: Recipe, key: str) -> bool:
    """Whether a refusable key asks for something (``strip: false`` asks for nothing)."""
    if key == "workload":
        return bool(recipe.steps.workload)
    value: object = getattr(recipe, key, True)
    return bool(value)


def refusals(recipe: Recipe) -> tuple[KeyUse, ...]:
    return tuple(u for u in review(recipe) if u.verdict is Verdict.REFUSED)


__all__ = ["AT_BUILD", "REFUSED", "STEPS", "KeyUse", "Verdict", "refusals", "review"]
