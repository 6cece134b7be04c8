"""Meson (boulder's ``meson.yaml``): plain build type (the tuning sets the flags), no
downloads of wraps."""

_CHECK = ('test -e ./meson.build || ( echo "%%meson: The ./meson.build script could not be '
          'found" ; exit 1 )')

ACTIONS: dict[str, str] = {
    "meson": f'{_CHECK}\nmeson setup %(options_meson) "%(builddir)"',
    "meson_unity": f'{_CHECK}\nmeson setup --unity on %(options_meson) "%(builddir)"',
    "meson_build": 'meson compile --verbose -j "%(jobs)" -C "%(builddir)"',
    "meson_install": 'DESTDIR="%(installroot)" meson install --no-rebuild -C "%(builddir)"',
    # --num-processes, not boulder's -j: meson before 1.1 knows only the long option.
    "meson_test": ('meson test --no-rebuild --print-errorlogs --verbose '
                   '--num-processes "%(jobs)" -C "%(builddir)"'),
}

DEFINITIONS: dict[str, str] = {
    "options_meson": (
        '--buildtype="plain" --prefix="%(prefix)" --libdir="lib%(libsuffix)" '
        '--bindir="%(bindir)" --sbindir="%(sbindir)" '
        '--libexecdir="lib%(libsuffix)/%(name)" --includedir="%(includedir)" '
        '--datadir="%(datadir)" --mandir="%(mandir)" --infodir="%(infodir)" '
        '--localedir="%(localedir)" --sysconfdir="%(sysconfdir)" '
        '--localstatedir="%(localstatedir)" --wrap-mode="nodownload"'
    ),
}
