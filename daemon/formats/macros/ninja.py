"""Ninja on its own (boulder's ``ninja.yaml``), in the build directory."""

ACTIONS: dict[str, str] = {
    "ninja": "%(ninja_common)",
    "ninja_install": 'DESTDIR="%(installroot)" %(ninja_common) install',
    "ninja_test": "%(ninja_common) test",
}

DEFINITIONS: dict[str, str] = {
    "ninja_common": 'ninja --verbose -j "%(jobs)" -C "%(builddir)"',
}
