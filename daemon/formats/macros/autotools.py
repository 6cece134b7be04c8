"""GNU autotools (boulder's ``autotools.yaml``). ``configure`` runs with dash, as boulder's
does (a faster shell for hundreds of tests); the ``_with_bash`` forms use bash."""

_CHECK = ('test -x ./configure || ( echo "%%configure: The ./configure script could not be '
          'found" ; exit 1 )')

ACTIONS: dict[str, str] = {
    "configure": (
        f"{_CHECK}\n"
        "CONFIG_SHELL=/usr/bin/dash; export CONFIG_SHELL\n"
        "SHELL=/usr/bin/dash; export SHELL\n"
        "/usr/bin/dash ./configure %(options_configure)"
    ),
    "configure_with_bash": (
        f"{_CHECK}\n"
        "CONFIG_SHELL=/usr/bin/bash; export CONFIG_SHELL\n"
        "SHELL=/usr/bin/bash; export SHELL\n"
        "/usr/bin/bash ./configure %(options_configure)"
    ),
    "autogen": (
        'NOCONFIGURE="noconfigure"; export NOCONFIGURE\n'
        "CONFIG_SHELL=/usr/bin/dash; export CONFIG_SHELL\n"
        "SHELL=/usr/bin/dash; export SHELL\n"
        "/usr/bin/dash ./autogen.sh\n"
        "%configure"
    ),
    "autogen_with_bash": (
        'NOCONFIGURE="noconfigure"; export NOCONFIGURE\n'
        "CONFIG_SHELL=/usr/bin/bash; export CONFIG_SHELL\n"
        "SHELL=/usr/bin/bash; export SHELL\n"
        "/usr/bin/bash ./autogen.sh\n"
        "%configure_with_bash"
    ),
    "reconfigure": (
        "CONFIG_SHELL=/usr/bin/dash; export CONFIG_SHELL\n"
        "SHELL=/usr/bin/dash; export SHELL\n"
        'autoreconf -vfi || ( echo "%%reconfigure: autoreconf failed" ; exit 1 )\n'
        "%configure"
    ),
    "reconfigure_with_bash": (
        "CONFIG_SHELL=/usr/bin/bash; export CONFIG_SHELL\n"
        "SHELL=/usr/bin/bash; export SHELL\n"
        'autoreconf -vfi || ( echo "%%reconfigure: autoreconf failed" ; exit 1 )\n'
        "%configure_with_bash"
    ),
    "make": 'make -j "%(jobs)"',
    "make_install": '%make install DESTDIR="%(installroot)"',
}

DEFINITIONS: dict[str, str] = {
    "options_configure": (
        '--prefix="%(prefix)" --bindir="%(bindir)" --sbindir="%(sbindir)" '
        '--build="%(build_platform)" --host="%(host_platform)" --libdir="%(libdir)" '
        '--mandir="%(mandir)" --infodir="%(infodir)" --datadir="%(datadir)" '
        '--sysconfdir="%(sysconfdir)" --localstatedir="%(localstatedir)" '
        '--sharedstatedir="%(sharedstatedir)" --libexecdir="%(libexecdir)"'
    ),
}
