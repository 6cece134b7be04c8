"""ccache statistics around a long build; a build without ccache (this builder's: no
compiler cache is shared between builds) says so and goes on."""

_RUN = "if command -v ccache >/dev/null; then ccache {flag}; else echo 'ccache: not in use'; fi"

ACTIONS: dict[str, str] = {
    "ccache_zero": _RUN.format(flag="--zero-stats"),
    "ccache_stats": _RUN.format(flag="--show-stats"),
}

DEFINITIONS: dict[str, str] = {}
