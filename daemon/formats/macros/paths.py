"""Where things go in the installed system (boulder's ``arch/base.yaml`` definitions)."""

ACTIONS: dict[str, str] = {}

DEFINITIONS: dict[str, str] = {
    "prefix": "/usr",
    "bindir": "%(prefix)/bin",
    "sbindir": "%(prefix)/sbin",
    "includedir": "%(prefix)/include",
    "libdir": "%(prefix)/lib%(libsuffix)",
    "libexecdir": "%(libdir)/%(name)",
    "datadir": "%(prefix)/share",
    "vendordir": "%(datadir)/defaults",
    "docdir": "%(datadir)/doc",
    "infodir": "%(datadir)/info",
    "localedir": "%(datadir)/locale",
    "mandir": "%(datadir)/man",
    "bashcompletionsdir": "%(datadir)/bash-completion/completions",
    "completionsdir": "%(bashcompletionsdir)",
    "fishcompletionsdir": "%(datadir)/fish/vendor_completions.d",
    "elvishcompletionsdir": "%(datadir)/elvish/lib",
    "zshcompletionsdir": "%(datadir)/zsh/site-functions",
    "localstatedir": "/var",
    "sharedstatedir": "%(localstatedir)/lib",
    "runstatedir": "/run",
    "sysconfdir": "/etc",
    "udevrulesdir": "%(prefix)/lib/udev/rules.d",
    # The out-of-tree build directory cmake, meson and ninja use, relative to the work dir.
    "builddir": "serpent-builddir",
    # Encoded into the build and host platform triplets (``--build``/``--host``).
    "vendorID": "serpent-linux",
    "build_platform": "%(arch_platform)-%(vendorID)",
    "host_platform": "%(arch_platform)-%(vendorID)",
    "pkgconfigpath": "%(libdir)/pkgconfig:/usr/share/pkgconfig",
}
