"""Python (boulder's ``python.yaml``): setuptools' ``setup.py``, PEP 517 wheels built
without isolation and installed with ``installer``, byte-compilation of the install tree."""

ACTIONS: dict[str, str] = {
    "python_setup": ('test -e ./setup.py || ( echo "%%python: The ./setup.py script could '
                     'not be found" ; exit 1 )\n'
                     "python3 setup.py build"),
    "python_install": 'python3 setup.py install --root="%(installroot)"',
    # Older recipes name it (in comments, today): setuptools' own test command.
    "python_check": "python3 setup.py test",
    "pyproject_build": "python3 -m build --wheel --no-isolation",
    "pyproject_install": 'python3 -m installer --destdir="%(installroot)" dist/*.whl',
    "python_compile": (
        "python_compile() {\n"
        '    if [ -z "${1:-}" ]; then\n'
        "        python3 -m compileall -q %(installroot) || exit 1\n"
        "    else\n"
        '        python3 -m compileall -q "$@" || exit 1\n'
        "    fi\n"
        "}\n"
        "python_compile"
    ),
}

DEFINITIONS: dict[str, str] = {}
