"""The environment a child process gets: an allow-list, never a copy of ours.

Our own environment may hold MEDAI_KEY_PASSWORD (removed once the key is unlocked, but an operator may export
other secrets), cloud credentials or tokens; pip building an sdist, apt, gpg, helm, skopeo and ansible-runner
(which writes the environment into its artifacts) see only the names below plus what the caller adds.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager

BASE = ("PATH", "HOME", "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "LC_MESSAGES", "TZ", "TMPDIR", "USER", "LOGNAME",
        "TERM", "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "VIRTUAL_ENV")
PROXY = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy")
# What Ansible legitimately takes from the operator's shell (paths and switches, no values that are secrets)
ANSIBLE = ("SSH_AUTH_SOCK", "ANSIBLE_CONFIG", "ANSIBLE_COLLECTIONS_PATH", "ANSIBLE_LOCAL_TEMP", "ANSIBLE_REMOTE_TEMP",
           "ANSIBLE_PRIVATE_KEY_FILE", "ANSIBLE_SSH_ARGS", "MEDAI_HOME", "MEDAI_HELM")


def child_env(extra: Mapping[str, str] | None = None, allow: Iterable[str] = (), network: bool = False) -> dict[str, str]:
    names = (*BASE, *(PROXY if network else ()), *allow)
    env = {k: os.environ[k] for k in names if k in os.environ}
    env.update(extra or {})
    return env


@contextmanager
def only_environ(env: Mapping[str, str]) -> Iterator[None]:
    """Run in-process code that copies os.environ into a child (ansible-runner) with `env` as the whole environment."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


HELM = ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME", "HELM_REGISTRY_CONFIG", "HELM_REPOSITORY_CONFIG",
        "HELM_REPOSITORY_CACHE", "XDG_CACHE_HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME")
_wrappers: dict[tuple, str] = {}


def allow_listed_executable(real: str, env: Mapping[str, str]) -> str:
    """A launcher for a program started by a library that passes our whole environment on (pyhelm3 runs helm
    through a shell with os.environ): it execs `real` under `env -i` with exactly `env`. The values are read by the
    shell from a private (0600) file beside the launcher and exported, so they are never on any argv (visible in
    /proc/PID/cmdline to every local user); both live in a private (0700) temporary directory, since `env` may
    hold a proxy URL with credentials."""
    import atexit
    import shlex
    import shutil
    import tempfile

    key = (real, tuple(sorted(env.items())))
    if key in _wrappers and os.path.exists(_wrappers[key]):
        return _wrappers[key]
    d = tempfile.mkdtemp(prefix="medai-exec-")
    atexit.register(shutil.rmtree, d, True)
    path = os.path.join(d, os.path.basename(real))
    values = os.path.join(d, ".env")
    with open(os.open(values, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600), "w") as f:
        f.write("".join(f"{k}={shlex.quote(v)}\n" for k, v in sorted(env.items()) if k.isidentifier()))
    inner = 'unset PWD OLDPWD; set -a; . "$0"; set +a; exec "$@"'
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o700), "w") as f:
        f.write(f"#!/bin/sh\nexec /usr/bin/env -i /bin/sh -c {shlex.quote(inner)} {shlex.quote(values)} "
                f"{shlex.quote(real)} \"$@\"\n")
    _wrappers[key] = path
    return path
