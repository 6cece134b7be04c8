"""Build targets (boulder's ``arch/*.yaml``): what changes between a native build and a
32-bit (``emul32``) one on the same host. A target is the arch, or ``emul32/<arch>``."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Target:
    definitions: dict[str, str]
    #: The ``architecture`` tuning flags by kind (c, cxx, d, rust).
    flags: dict[str, str] = field(default_factory=dict)


TARGETS: dict[str, Target] = {
    "x86_64": Target(
        definitions={
            "libsuffix": "",
            "arch_platform": "x86_64",
            "march": "x86-64-v2",
            "mtune": "ivybridge",
            "target_triple": "x86_64-unknown-linux-gnu",
            "goamd64_arch": "v2",
        },
        flags={"c": "-march=x86-64-v2 -mtune=ivybridge",
               "cxx": "-march=x86-64-v2 -mtune=ivybridge",
               "d": "-mcpu=x86-64-v2", "rust": "-C target-cpu=x86-64-v2"},
    ),
    "emul32/x86_64": Target(
        definitions={
            "libsuffix": "32",
            "arch_platform": "i686",
            "march": "i686",
            "mtune": "i686",
            "target_triple": "i686-unknown-linux-gnu",
            "goamd64_arch": "v2",
            "cc": "%(compiler_c) -m32",
            "cxx": "%(compiler_cxx) -m32",
            "cpp": "%(compiler_cpp) -m32",
            "pkgconfigpath": "%(libdir)/pkgconfig:/usr/share/pkgconfig:%(prefix)/lib/pkgconfig",
        },
        flags={"c": "-march=i686 -mtune=i686", "cxx": "-march=i686 -mtune=i686",
               "rust": "-C target-cpu=i686"},
    ),
    "aarch64": Target(
        definitions={
            "libsuffix": "",
            "arch_platform": "aarch64",
            "march": "armv8-a+simd+fp+crypto",
            "mtune": "cortex-a72.cortex-a53",
            "target_triple": "aarch64-unknown-linux-gnu",
            "goamd64_arch": "",
        },
        flags={"c": "-march=armv8-a+simd+fp+crypto -mtune=cortex-a72.cortex-a53",
               "cxx": "-march=armv8-a+simd+fp+crypto -mtune=cortex-a72.cortex-a53",
               "rust": "-C target-cpu=cortex-a72"},
    ),
}


def emul32_target(arch: str) -> str:
    return f"emul32/{arch}"
