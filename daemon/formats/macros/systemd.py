"""Files systemd reads from the vendor directories: ``%tmpfiles LINE`` and ``%sysusers
LINE`` append a line to ``<dir>/<name>.conf`` in the install root (boulder's ``misc.yaml``).
Only the native build writes them: a 32-bit (``emul32``) pass has a ``libsuffix`` and skips
them, so they are not written twice."""

_APPEND = (
    "{fn}() {{\n"
    '    if [ -z "%(libsuffix)" ]; then\n'
    "        mkdir -p %(installroot)%({dir})\n"
    '        echo "$@" >> %(installroot)%({dir})/%(name).conf\n'
    "    fi\n"
    "}}\n"
    "{fn}"
)

ACTIONS: dict[str, str] = {
    "tmpfiles": _APPEND.format(fn="create_tmpfiles", dir="tmpfilesdir"),
    "sysusers": _APPEND.format(fn="create_sysusers", dir="sysusersdir"),
}

DEFINITIONS: dict[str, str] = {
    "tmpfilesdir": "%(prefix)/lib/tmpfiles.d",
    "sysusersdir": "%(prefix)/lib/sysusers.d",
}
