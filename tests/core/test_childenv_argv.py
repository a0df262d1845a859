"""Children get environment values in their environment, never on an argv: the allow-listed
launcher execs `env -i` with file names only (its argv is in /proc/PID/cmdline for every local user to read);
the child still sees exactly the allow-listed environment."""
from __future__ import annotations

import shlex
import stat
import subprocess
from pathlib import Path

from installer.core.childenv import allow_listed_executable


def test_values_reach_the_child_but_never_an_argv(tmp_path):
    secret = "https://user:proxy-pass-0042@proxy.example:3128"
    env = {"PATH": "/usr/bin:/bin", "HTTPS_PROXY": secret, "QUOTED": "it's $(touch /tmp/never) `x` \"y\""}
    launcher = Path(allow_listed_executable("/usr/bin/env", env))
    exec_line = launcher.read_text().splitlines()[-1]
    argv = shlex.split(exec_line.removeprefix("exec "))
    assert argv[:2] == ["/usr/bin/env", "-i"] and not any(secret in a or "HTTPS_PROXY=" in a for a in argv), argv
    values = Path(argv[5])  # env -i /bin/sh -c SCRIPT VALUES REAL "$@"
    assert values.parent == launcher.parent and stat.S_IMODE(values.stat().st_mode) == 0o600
    seen = subprocess.run([str(launcher)], capture_output=True, text=True, timeout=30).stdout.splitlines()
    assert sorted(seen) == sorted(f"{k}={v}" for k, v in env.items())
