"""Under `cairn up` run as root, a recipe whose steps try every way out of the sandbox finds
each door closed, and the repository, the keys and the host's files are untouched.

The farm is a real `cairn up` process (summit, a builder, vessel, journal) on a real recipe
repository made here, with its state in a directory the build user could reach (the hard
case: like /var/lib/cairn, not behind a 0700 home). A first run publishes a harmless package
and makes vessel's key and summit's token; the test then plants secrets only root can read,
host files anyone may write (only read-only mounts stand in the way), and commits the escape
recipe. Its step tries each escape, prints one ``ESCAPE <door>: OPEN|blocked`` line per door,
and then fails on purpose so that the build log stays with the builder for the test to read.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.unit.avalanche.support import git

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="the builder must run as root for this test"),
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap not installed"),
    pytest.mark.timeout(300),
]

TREE = Path(__file__).resolve().parents[2]

HELLO = """name: hello
version: 1.0.0
release: 1
summary: Says hello
license: MPL-2.0
install: |
    mkdir -p $installdir/usr/share/hello && echo hello > $installdir/usr/share/hello/hello.txt
"""

#: Recipes whose names or upstreams are the escape: a ``file://`` upstream of vessel's
#: signing key (with a wrong hash, so a hash oracle would show the real one) and a
#: sub-package named like a path out of the builder.
HOSTFILE = """name: hostfile
version: 1.0.0
release: 1
summary: Fetches a host file
license: MPL-2.0
upstreams:
    - file://{key}: {wrong}
install: |
    mkdir -p $installdir/usr/share/hostfile && cp -r . $installdir/usr/share/hostfile/
"""
PATHNAME = """name: pathname
version: 1.0.0
release: 1
summary: Names a package like a path
license: MPL-2.0
install: |
    mkdir -p $installdir/usr/share/pathname && echo x > $installdir/usr/share/pathname/x
packages:
    - "../../../../../{escaped}":
        paths:
            - /usr/share
"""
ESCAPED = "cairn-escaped-package"

#: One line per door; ``{...}`` are filled in with the test's paths. A door is OPEN when the
#: command succeeds. Reads print what they read, so a leak would show in the log.
DOORS = {
    "remount-root-rw": "mount -o remount,rw /",
    "remount-host-var-rw": "mount -o remount,rw /var",
    "umount-tmp": "umount /tmp",
    "umount-hidden-state": "umount -l {state}",
    "read-root-only-secret": "cat {secret}",
    "read-vessel-key": "cat {state}/vessel/minisign.key",
    "read-summit-token": "cat {state}/summit/admin.token",
    "read-key-standin": "cat {state}/vessel-key.standin",
    "read-token-standin": "cat {state}/summit-token.standin",
    "read-world-readable-summit-db": "head -c 15 {state}/summit/summit.sqlite",
    "write-host-dir": "sh -c 'echo PWNED > {open}/created'",
    "append-host-file": "sh -c 'echo PWNED >> {open}/planted.txt'",
    "write-vessel-key": "sh -c 'echo PWNED >> {state}/vessel/minisign.key'",
    "write-repository": "sh -c 'echo PWNED >> {state}/vessel/repo/minisign.pub'",
    "write-root-owned-host-dir": "sh -c 'echo PWNED > {host}/probe'",
    "unshare-user": "unshare --user --map-root-user true",
    "unshare-mount": "unshare --mount true",
    "mount-tmpfs": "mount -t tmpfs none /build/work",
    "chroot": "chroot / true",
    "su-to-root": "su -c true root",
    "run-as-root": "test \"$(id -u)\" = 0",
    "any-capability": "sh -c 'grep -E \"^Cap(Prm|Eff|Bnd|Amb):\" /proc/self/status"
                      " | grep -qvE \":[[:space:]]*0+$\"'",
    "new-privileges": "sh -c 'grep -q \"^NoNewPrivs:[[:space:]]*0\" /proc/self/status'",
    "setuid-mount": "sh -c 'grep -v nosuid /proc/self/mountinfo | grep -q .'",
    "setuid-copy": "sh -c 'cp /usr/bin/id ./id-suid && chmod 4755 ./id-suid"
                   " && test \"$(./id-suid -u)\" = 0'",
    "see-builder-processes": "sh -c 'for s in /proc/[0-9]*/status; do"
                             " u=$(awk \"/^Uid:/{{print \\$2}}\" $s 2>/dev/null);"
                             " [ -n \"$u\" ] && [ \"$u\" != \"$(id -u)\" ] && exit 0;"
                             " done; exit 1'",
    "ptrace-builder": "python3 -c \"{ptrace}\"",
}

#: Attach to the builder process (its command line names daemon.cli); OPEN if attached.
PTRACE = (
    "import ctypes, os, sys; libc = ctypes.CDLL(None, use_errno=True); "
    "needle = ''.join(['daemon', '.cli']).encode(); "
    "pids = [p for p in os.listdir('/proc') if p.isdigit() and p != str(os.getpid()) "
    "and needle in open('/proc/' + p + '/cmdline', 'rb').read()]; "
    "sys.exit(0 if any(libc.ptrace(16, int(p), 0, 0) == 0 for p in pids) else 1)"
)


def _escape_recipe(paths: dict[str, str]) -> str:
    lines = ['try() { door=$1; shift; if eval "$@"; then r=OPEN; else r=blocked; fi;'
             ' echo; echo "ESCAPE $door: $r"; }']
    for door, command in DOORS.items():
        filled = command.format(ptrace=PTRACE, **paths)
        lines.append(f"try {door} {_shell_quote(filled)} </dev/null 2>&1")
    lines += ["echo ESCAPE-REPORT-COMPLETE", "exit 1"]
    body = "\n".join(f"    {line}" for line in lines)
    return ("name: escape\nversion: 1.0.0\nrelease: 1\nsummary: Tries every way out\n"
            f"license: MPL-2.0\nbuild: |\n{body}\n")


def _shell_quote(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"


@pytest.fixture
def host_dir() -> Iterator[Path]:
    """A directory on the host that the sandbox's view includes (not under /tmp, which it
    replaces), traversable by anyone like /var/lib; removed afterwards."""
    path = Path("/var/tmp") / f"cairn-escape-{uuid.uuid4().hex[:12]}"
    path.mkdir(mode=0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _cairn_up(state: Path, recipes: Path, summary: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(TREE)}
    return subprocess.run(
        [sys.executable, "-m", "daemon.cli", "up", "--recipes", str(recipes), "--state",
         str(state), "--port", "0", "--builders", "1", "--poll-interval", "0.5",
         "--until-idle", "--summary-json", str(summary), "--host"],
        env=env, cwd=TREE, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip


def _planted(path: Path, text: str, mode: int) -> str:
    path.write_text(text)
    path.chmod(mode)
    return text


def _snapshot(*roots: Path) -> dict[str, str]:
    found: dict[str, str] = {}
    for root in roots:
        for path in sorted([root] if root.is_file() else root.rglob("*")):
            if path.is_file():
                found[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                found[str(path)] = "dir"
    return found


def test_every_escape_is_blocked_under_cairn_up_as_root(host_dir: Path) -> None:
    state, recipes, open_dir = host_dir / "state", host_dir / "recipes", host_dir / "open"
    state.mkdir(mode=0o755)
    (recipes / "hello").mkdir(parents=True)
    (recipes / "hello" / "stone.yaml").write_text(HELLO)
    git(recipes, "init", "-q", "-b", "main")
    git(recipes, "add", "-A")
    git(recipes, "commit", "-q", "-m", "hello")

    first = _cairn_up(state, recipes, host_dir / "first.json")
    assert first.returncode == 0, first.stdout + first.stderr
    vessel_key, token = state / "vessel" / "minisign.key", state / "summit" / "admin.token"
    assert vessel_key.is_file() and token.is_file()

    open_dir.mkdir(mode=0o777)
    open_dir.chmod(0o777)  # whatever the umask: only the sandbox's mounts stand in the way
    secret_values = [
        _planted(host_dir / "secret.txt", f"root-only-{secrets.token_hex(16)}\n", 0o600),
        _planted(state / "vessel-key.standin", f"key-{secrets.token_hex(16)}\n", 0o600),
        _planted(state / "summit-token.standin", f"token-{secrets.token_hex(16)}\n", 0o600),
        vessel_key.read_text(), token.read_text(),
    ]
    _planted(open_dir / "planted.txt", "a file anyone may write\n", 0o666)
    guarded = [state / "vessel" / "repo", vessel_key, token, host_dir / "secret.txt",
               state / "vessel-key.standin", state / "summit-token.standin", open_dir]
    before = _snapshot(*guarded)

    paths = {"state": str(state), "secret": str(host_dir / "secret.txt"), "open": str(open_dir),
             "host": str(host_dir)}
    (recipes / "escape").mkdir()
    (recipes / "escape" / "stone.yaml").write_text(_escape_recipe(paths))
    (recipes / "hostfile").mkdir()
    (recipes / "hostfile" / "stone.yaml").write_text(
        HOSTFILE.format(key=vessel_key, wrong="ab" * 32))
    (recipes / "pathname").mkdir()
    (recipes / "pathname" / "stone.yaml").write_text(PATHNAME.format(escaped=ESCAPED))
    secret_values += [hashlib.sha256(path.read_bytes()).hexdigest()
                      for path in (vessel_key, token)]
    git(recipes, "add", "-A")
    git(recipes, "commit", "-q", "-m", "escape")

    second = _cairn_up(state, recipes, host_dir / "second.json")
    summary = json.loads((host_dir / "second.json").read_text())
    assert second.returncode == 1, second.stdout + second.stderr
    # The escape fails on purpose; hostfile's build refuses its file:// upstream; pathname
    # is a recipe error that summit never plans.
    reasons = {f["source"]: f["reason"] for f in summary["failed"]}
    assert set(reasons) == {"escape", "hostfile"}, summary
    assert "recipe's directory" in reasons["hostfile"], reasons["hostfile"]
    logs = [p for p in state.glob("avalanche/*/artefacts/*/build.log")
            if "ESCAPE-REPORT-COMPLETE" in p.read_text()]  # fmt: skip
    assert len(logs) == 1, "the escape build's log is missing"
    log = logs[0].read_text()
    doors = dict(line.removeprefix("ESCAPE ").split(": ", 1)
                 for line in log.splitlines() if line.startswith("ESCAPE ") and ": " in line)
    assert set(doors) == set(DOORS), log
    assert {door for door, result in doors.items() if result != "blocked"} == set(), log

    assert _snapshot(*guarded) == before
    assert not (host_dir / "probe").exists()
    escaped = [*host_dir.rglob(f"{ESCAPED}*"), *Path("/var/tmp").glob(f"{ESCAPED}*"),
               *Path("/var/tmp/cairn-builds").rglob(f"{ESCAPED}*"), *Path("/").glob(f"{ESCAPED}*")]
    assert escaped == [], "a package named like a path was written outside the builder"
    shown = [log, (state / "cairn.log").read_text(), second.stdout, second.stderr,
             json.dumps(summary)]
    shown += [p.read_bytes().decode("utf-8", "replace")
              for p in (state / "vessel" / "repo").rglob("*") if p.is_file()]
    for value in secret_values:
        assert not any(value.strip() in text for text in shown), "a secret reached the output"
