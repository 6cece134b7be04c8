"""The compilers and tools each toolchain stands for (boulder's: ``llvm``, its default, or
``gnu``), as the ``compiler_*`` definitions the ``%(cc)``... definitions point to."""

from __future__ import annotations

#: What a build needs present to use the toolchain (checked in the build's root).
REQUIRED: dict[str, tuple[str, ...]] = {
    "llvm": ("clang", "clang++", "ld.lld", "llvm-ar"),
    "gnu": ("gcc", "g++", "ld.bfd", "gcc-ar"),
}

COMPILERS: dict[str, dict[str, str]] = {
    "llvm": {
        "compiler_c": "clang",
        "compiler_cxx": "clang++",
        "compiler_objc": "clang",
        "compiler_objcxx": "clang++",
        "compiler_cpp": "clang-cpp",
        "compiler_objcpp": "clang -E -",
        "compiler_objcxxcpp": "clang++ -E",
        "compiler_d": "ldc2",
        "compiler_ar": "llvm-ar",
        "compiler_ld": "ld.lld",
        "compiler_objcopy": "llvm-objcopy",
        "compiler_nm": "llvm-nm",
        "compiler_ranlib": "llvm-ranlib",
        "compiler_strip": "llvm-strip",
        # The linker the compiler drivers use (boulder's LLVM toolchain links with lld).
        "linker_flags": "-fuse-ld=lld",
    },
    "gnu": {
        "compiler_c": "gcc",
        "compiler_cxx": "g++",
        "compiler_objc": "gcc",
        "compiler_objcxx": "g++",
        "compiler_cpp": "gcc -E",
        "compiler_objcpp": "gcc -E",
        "compiler_objcxxcpp": "g++ -E",
        "compiler_d": "gdc",
        "compiler_ar": "gcc-ar",
        "compiler_ld": "ld.bfd",
        "compiler_objcopy": "objcopy",
        "compiler_nm": "gcc-nm",
        "compiler_ranlib": "gcc-ranlib",
        "compiler_strip": "strip",
        "linker_flags": "",
    },
}

#: The tool definitions recipes use, in terms of the toolchain's (a target may add -m32).
TOOLS: dict[str, str] = {
    "cc": "%(compiler_c)",
    "cxx": "%(compiler_cxx)",
    "objc": "%(compiler_objc)",
    "objcxx": "%(compiler_objcxx)",
    "cpp": "%(compiler_cpp)",
    "objcpp": "%(compiler_objcpp)",
    "objcxxcpp": "%(compiler_objcxxcpp)",
    "d": "%(compiler_d)",
    "ar": "%(compiler_ar)",
    "ld": "%(compiler_ld)",
    "objcopy": "%(compiler_objcopy)",
    "nm": "%(compiler_nm)",
    "ranlib": "%(compiler_ranlib)",
    "strip": "%(compiler_strip)",
}
