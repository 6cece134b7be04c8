"""``tuning``: groups a recipe turns on, off or to an option, and the compiler and linker
flags each stands for (boulder's ``arch/base.yaml`` and ``pgo.yaml``).

A group enables flag sets (:data:`GROUPS`): when on, its ``enabled`` ones (or its chosen
option's; ``default`` when the recipe names none); when off, its ``disabled`` ones. The
recipe's entries are applied over :data:`DEFAULT_GROUPS`. Each flag set (:data:`FLAGS`) gives
flags by kind — ``c``, ``cxx``, ``f`` (Fortran), ``ld``, ``d``, ``rust``, ``vala`` — for both
toolchains, or for one only (``llvm``/``gnu`` keys). Flags are gathered in the order of the
groups here, so the same recipe always gets the same line.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

KINDS = ("c", "cxx", "f", "ld", "d", "rust", "vala")


@dataclass(frozen=True, slots=True)
class Group:
    enabled: tuple[str, ...] = ()
    disabled: tuple[str, ...] = ()
    options: dict[str, tuple[str, ...]] = field(default_factory=dict)
    default: str | None = None


@dataclass(frozen=True, slots=True)
class FlagSet:
    both: dict[str, str] = field(default_factory=dict)
    llvm: dict[str, str] = field(default_factory=dict)
    gnu: dict[str, str] = field(default_factory=dict)


def _on(*names: str) -> Group:
    return Group(enabled=names)


GROUPS: dict[str, Group] = {
    "architecture": _on("architecture"),
    "base": _on("base"),
    "debug": Group(options={"lines": ("debug-lines",), "std": ("debug-std",)}, default="std"),
    "compress-debug": Group(options={"none": ("compress-debug-none",),
                                     "zlib": ("compress-debug-zlib",),
                                     "zstd": ("compress-debug-zstd",)}, default="zstd"),
    "frame-pointer": Group(enabled=("no-omit-frame-pointer",),
                           disabled=("omit-frame-pointer",)),
    "build-id": _on("build-id"),
    "bindnow": _on("bindnow"),
    "symbolic": Group(options={"all": ("symbolic-all",), "functions": ("symbolic-functions",),
                               "nonweak": ("symbolic-nonweak",)}, default="functions"),
    "fortify": Group(options={"lvl1": ("fortify-lvl1",), "lvl2": ("fortify-lvl2",),
                              "lvl3": ("fortify-lvl3",)}, default="lvl3"),
    "harden": Group(options={"none": ("harden-none",), "lvl1": ("harden-lvl1",),
                             "lvl2": ("harden-lvl2",)}, disabled=("harden-none",),
                    default="lvl1"),
    "control-flow": _on("control-flow"),
    "libstdc-assertions": _on("libstdc-assertions"),
    "thread-exceptions": _on("thread-exceptions"),
    "optimize": Group(options={"fast": ("optimize-fast",), "generic": ("optimize-generic",),
                               "size": ("optimize-size", "sections"),
                               "speed": ("optimize-speed",)}, default="generic"),
    "lto": Group(options={"full": ("lto-full",), "thin": ("lto-thin",)}, default="thin"),
    "ltoextra": Group(options={"full": ("ltoextra-full",), "thin": ("ltoextra-thin",)},
                      default="thin"),
    "lto-errors": _on("lto-errors"),
    "fat-lto": Group(enabled=("fat-lto",), disabled=("fat-lto-none",)),
    "icf": Group(options={"safe": ("icf-safe",), "all": ("icf-all",)}, default="safe"),
    "idae": _on("idae"),
    "polly": _on("polly"),
    "sections": _on("sections"),
    "common": _on("common"),
    "math": _on("math"),
    "noplt": _on("noplt", "bindnow"),
    "nosemantic": _on("nosemantic"),
    "nodaed": _on("nodaed"),
    "asneeded": _on("asneeded"),
    "avxwidth": _on("avxwidth-128"),
    "bolt": _on("bolt"),
    "runpath": _on("runpath"),
    "sse2avx": _on("sse2avx"),
    "pch-instantiate": _on("pch-instantiate"),
    "visibility": Group(options={"inline": ("visibility-inline",),
                                 "hidden": ("visibility-hidden",)}, default="inline"),
    "relative-vtables": _on("relative-vtables"),
    "relr": _on("relr"),
    "tls-gnu": _on("tls-gnu"),
    "version-allow-undefined": Group(enabled=("version-allow-undefined",),
                                     disabled=("version-no-undefined",)),
    "pgosample": _on("pgosample"),
    "pgostage1": _on("pgostage1"),
    "pgostage2": _on("pgostage2"),
    "pgouse": _on("pgouse"),
}

#: On unless a recipe turns them off (``architecture`` is always on).
DEFAULT_GROUPS = (
    "architecture", "asneeded", "avxwidth", "base", "bindnow", "build-id", "compress-debug",
    "control-flow", "debug", "fat-lto", "fortify", "frame-pointer", "harden", "icf",
    "libstdc-assertions", "lto", "lto-errors", "optimize", "relr", "symbolic",
    "thread-exceptions", "tls-gnu", "version-allow-undefined",
)


def _cf(value: str, *kinds: str) -> dict[str, str]:
    return dict.fromkeys(kinds or ("c", "cxx"), value)


_FORTIFY = "-Wp,-U_FORTIFY_SOURCE,-D_FORTIFY_SOURCE={}"
_HARDEN2 = "-fstack-protector-strong -fstack-clash-protection -fPIE --param ssp-buffer-size=4"
_POLLY = ("-fplugin=LLVMPolly.so -fpass-plugin=LLVMPolly.so -Xclang -mllvm -Xclang -polly "
          "-Xclang -mllvm -Xclang -polly-vectorizer=stripmine")
_MATH = "-fno-math-errno -fno-trapping-math"
_PGO = "%(pgo_dir)"

FLAGS: dict[str, FlagSet] = {
    # The target's own flags (-march...) are filled in from :mod:`.arch`.
    "architecture": FlagSet(),
    "base": FlagSet(both={**_cf("-pipe -Wformat -Wformat-security -Wno-error -fPIC"),
                          "ld": "-Wl,-O2,--gc-sections",
                          "d": "-release -Hkeep-all-bodies -relocation-model=pic -wi",
                          "rust": "-C strip=none"}),
    "omit-frame-pointer": FlagSet(both={
        **_cf("-fomit-frame-pointer -momit-leaf-frame-pointer"),
        "f": "-fomit-frame-pointer", "d": "-frame-pointer=none"}),
    "no-omit-frame-pointer": FlagSet(both={
        **_cf("-fno-omit-frame-pointer -mno-omit-leaf-frame-pointer"),
        "f": "-fno-omit-frame-pointer", "d": "-frame-pointer=all",
        "rust": "-C force-frame-pointers"}),
    "bindnow": FlagSet(both={"ld": "-Wl,-z,relro,-z,now"}),
    "symbolic-all": FlagSet(both={"ld": "-Wl,-Bsymbolic"}),
    "symbolic-functions": FlagSet(both={"ld": "-Wl,-Bsymbolic-functions"}),
    "symbolic-nonweak": FlagSet(llvm={"ld": "-Wl,-Bsymbolic-non-weak-functions"}),
    "fortify-lvl1": FlagSet(both=_cf(_FORTIFY.format(1), "c", "cxx", "f")),
    "fortify-lvl2": FlagSet(both=_cf(_FORTIFY.format(2), "c", "cxx", "f")),
    "fortify-lvl3": FlagSet(both=_cf(_FORTIFY.format(3), "c", "cxx", "f")),
    "harden-none": FlagSet(both=_cf("-fno-stack-protector")),
    "harden-lvl1": FlagSet(both=_cf("-fstack-protector --param ssp-buffer-size=32")),
    "harden-lvl2": FlagSet(both=_cf(_HARDEN2)),
    "control-flow": FlagSet(both=_cf("-fcf-protection", "c", "cxx", "f")),
    "libstdc-assertions": FlagSet(both=_cf("-Wp,-D_GLIBCXX_ASSERTIONS", "c", "cxx", "f")),
    "thread-exceptions": FlagSet(both=_cf("-fexceptions", "c", "cxx", "f")),
    "sections": FlagSet(both=_cf("-ffunction-sections -fdata-sections")),
    "optimize-fast": FlagSet(both=_cf("-Ofast", "c", "cxx", "f")),
    "optimize-generic": FlagSet(both={**_cf("-O2", "c", "cxx", "f", "d"),
                                      "rust": "-C opt-level=3 -C codegen-units=1"}),
    "optimize-size": FlagSet(both={**_cf("-Os", "c", "cxx", "d"),
                                   "rust": "-C opt-level=s -C codegen-units=1"},
                             gnu={"f": "-Os"}),
    "optimize-speed": FlagSet(both={**_cf("-O3", "c", "cxx", "f", "d"),
                                    "rust": "-C opt-level=3 -C codegen-units=1"}),
    # Rust's LTO goes through the linker plugin, which only lld reads: with the gnu
    # toolchain (GNU ld) cargo's own profile decides instead (boulder has lld everywhere).
    "lto-full": FlagSet(
        gnu=_cf("-flto=%(jobs) -flto-partition=one", "c", "cxx", "f", "ld"),
        llvm={**_cf("-flto=full", "c", "cxx", "f", "d", "ld"),
              "rust": "-C lto=fat -C linker-plugin-lto -C embed-bitcode=yes"}),
    "lto-thin": FlagSet(
        gnu=_cf("-flto=%(jobs)", "c", "cxx", "f", "ld"),
        llvm={**_cf("-flto=thin", "c", "cxx", "f", "d", "ld"),
              "rust": "-C lto=thin -C linker-plugin-lto -C embed-bitcode=yes"}),
    "ltoextra-full": FlagSet(gnu=_cf("-fdevirtualize-at-ltrans"),
                             llvm=_cf("-fwhole-program-vtables -fvirtual-function-elimination")),
    "ltoextra-thin": FlagSet(llvm=_cf("-fwhole-program-vtables")),
    "fat-lto": FlagSet(both=_cf("-ffat-lto-objects"), gnu={"f": "-ffat-lto-objects"}),
    "fat-lto-none": FlagSet(both=_cf("-fno-fat-lto-objects"), gnu={"f": "-fno-fat-lto-objects"}),
    "lto-errors": FlagSet(
        gnu=_cf("-Werror=odr -Werror=lto-type-mismatch -Werror=strict-aliasing"),
        llvm=_cf("-Werror=odr -Werror=strict-aliasing")),
    "build-id": FlagSet(both={"ld": "-Wl,--build-id=sha1",
                              "rust": "-C link-args=-Wl,--build-id=sha1"}),
    "compress-debug-zstd": FlagSet(both={
        "ld": "-Wl,--compress-debug-sections=zstd",
        "rust": "-C link-args=-Wl,--compress-debug-sections=zstd"}),
    "compress-debug-zlib": FlagSet(both={
        "ld": "-Wl,--compress-debug-sections=zlib",
        "rust": "-C link-args=-Wl,--compress-debug-sections=zlib"}),
    "compress-debug-none": FlagSet(both={
        "ld": "-Wl,--compress-debug-sections=none",
        "rust": "-C link-args=-Wl,--compress-debug-sections=none"}),
    "icf-all": FlagSet(llvm={"ld": "-Wl,--icf=all"}),
    "icf-safe": FlagSet(llvm={"ld": "-Wl,--icf=safe"}),
    "idae": FlagSet(llvm={"ld": "-Wl,--ignore-data-address-equality"}),
    "polly": FlagSet(llvm={**_cf(_POLLY), "f": "-fpass-plugin=LLVMPolly.so",
                           "d": "-polly -polly-vectorizer=stripmine"}),
    "bolt": FlagSet(gnu={**_cf("-fno-reorder-blocks-and-partition"), "ld": "-Wl,-q"},
                    llvm={**_cf("-fno-split-machine-functions"), "ld": "-Wl,-q"}),
    "common": FlagSet(both=_cf("-fcommon"), gnu={"f": "-fcommon"}),
    "debug-lines": FlagSet(
        both={"rust": "-C debuginfo=line-tables-only -C split-debuginfo=off"},
        llvm={**_cf("-gline-tables-only -fasynchronous-unwind-tables"),
              "d": "-gline-tables-only -gc"}),
    "debug-std": FlagSet(
        both={"f": "-g", "d": "-g -gc -d-debug", "rust": "-C debuginfo=2 -C split-debuginfo=off",
              "vala": "-g"},
        gnu=_cf("-g -feliminate-unused-debug-types -fasynchronous-unwind-tables"),
        llvm=_cf("-g -fasynchronous-unwind-tables")),
    "math": FlagSet(both={"f": "-ffast-math", "d": "-ffast-math -fp-contract=fast"},
                    gnu=_cf(_MATH), llvm=_cf(f"{_MATH} -ffp-contract=fast -ffp-model=fast")),
    "noplt": FlagSet(both=_cf("-fno-plt", "c", "cxx", "d"), gnu={"f": "-fno-plt"}),
    "nosemantic": FlagSet(both=_cf("-fno-semantic-interposition")),
    "nodaed": FlagSet(llvm=_cf("-fno-direct-access-external-data")),
    "avxwidth-128": FlagSet(both=_cf("-mprefer-vector-width=128"),
                            gnu={"f": "-mprefer-vector-width=128"}),
    "pch-instantiate": FlagSet(llvm=_cf("-fpch-instantiate-templates")),
    "asneeded": FlagSet(both={"ld": "-Wl,--as-needed"}),
    "runpath": FlagSet(both={"ld": "-Wl,--enable-new-dtags"}),
    "sse2avx": FlagSet(gnu=_cf("-msse2avx", "c", "cxx", "f")),
    "visibility-hidden": FlagSet(both={"c": "-fvisibility=hidden",
                                       "cxx": "-fvisibility-inlines-hidden -fvisibility=hidden",
                                       "d": "-fvisibility=hidden"},
                                 gnu={"f": "-fvisibility=hidden"}),
    "visibility-inline": FlagSet(both={"cxx": "-fvisibility-inlines-hidden"}),
    "relative-vtables": FlagSet(llvm={
        "cxx": "-fexperimental-library -fexperimental-relative-c++-abi-vtables"}),
    "relr": FlagSet(both={"ld": "-Wl,-z,pack-relative-relocs"}),
    "tls-gnu": FlagSet(both=_cf("-mtls-dialect=gnu2", "c", "cxx", "f")),
    "version-allow-undefined": FlagSet(both={"ld": "-Wl,--undefined-version"}),
    "version-no-undefined": FlagSet(both={"ld": "-Wl,--no-undefined-version"}),
    "pgosample": FlagSet(llvm=_cf("-fno-profile-sample-accurate", "c", "cxx", "ld"),
                         gnu=_cf("-fprofile-partial-training", "c", "cxx", "ld")),
    "pgostage1": FlagSet(
        llvm={**_cf(f"-fprofile-generate={_PGO}/IR", "c", "cxx", "ld"),
              "rust": f"-Cprofile-generate={_PGO}/IR"},
        gnu=_cf(f"-fprofile-generate -fprofile-dir={_PGO}", "c", "cxx", "ld")),
    "pgostage2": FlagSet(llvm=_cf(
        f"-fprofile-use={_PGO}/ir.profdata -fcs-profile-generate={_PGO}/CS", "c", "cxx", "ld")),
    "pgouse": FlagSet(
        llvm={**_cf(f"-fprofile-use={_PGO}/combined.profdata", "c", "cxx", "ld"),
              "rust": f"-Cprofile-use={_PGO}/combined.profdata "
                      "-Cllvm-args=-pgo-warn-missing-function"},
        gnu=_cf(f"-fprofile-use -fprofile-dir={_PGO} -fprofile-correction", "c", "cxx", "ld")),
}


class TuningError(ValueError):
    """A ``tuning`` entry naming a group or option that does not exist."""


def enabled_sets(entries: Iterable[tuple[str, bool | str]]) -> tuple[str, ...]:
    """The flag sets the recipe's ``(group, value)`` entries enable over the defaults."""
    chosen: dict[str, bool | str] = dict.fromkeys(DEFAULT_GROUPS, True)
    for group, value in entries:
        spec = GROUPS.get(group)
        if spec is None:
            raise TuningError(f"unknown tuning group {group!r}; known: {', '.join(GROUPS)}")
        if isinstance(value, str) and value not in spec.options:
            options = ", ".join(spec.options) or "none (it is on or off)"
            raise TuningError(f"tuning group {group!r} has no option {value!r}; its options: "
                              f"{options}")  # fmt: skip
        chosen[group] = value
    sets: list[str] = []
    for group, spec in GROUPS.items():
        if group not in chosen:
            continue
        value = chosen[group]
        if value is False:
            sets.extend(spec.disabled)
        elif isinstance(value, str):
            sets.extend(spec.options[value])
        elif spec.options:
            sets.extend(spec.options[spec.default or next(iter(spec.options))])
        else:
            sets.extend(spec.enabled)
    return tuple(dict.fromkeys(sets))


def flags(sets: Iterable[str], toolchain: str, architecture: dict[str, str]) -> dict[str, str]:
    """The flag line of each kind for ``toolchain`` (``architecture``: the target's own)."""
    parts: dict[str, list[str]] = {kind: [] for kind in KINDS}
    for name in sets:
        if name == "architecture":
            chosen = architecture
        else:
            flag_set = FLAGS[name]
            chosen = {**flag_set.both, **(flag_set.llvm if toolchain == "llvm" else flag_set.gnu)}
        for kind, value in chosen.items():
            if value:
                parts[kind].append(value)
    return {kind: " ".join(values) for kind, values in parts.items()}
