#!/usr/bin/env python3
"""medai bootstrap: run medai from this bundle on a host that has python3 and nothing else, with no network.

    python3 /media/usb/bundle/bootstrap.py install --inventory site.yml --bundle /media/usb/bundle

The first run creates a venv in ${MEDAI_HOME:-./.medai}/venv from tools/wheelhouse only (pip runs from its own
wheel in the wheelhouse, --no-index, so neither PyPI nor python3-venv/ensurepip is needed); later runs reuse it
while the wheelhouse is unchanged. Then it runs `medai ARGS...` with the bundle's Ansible collections, playbooks,
roles and helm. Written by installer/bundle/tools.py; it uses the standard library only.
"""
import hashlib
import os
import subprocess
import sys
from pathlib import Path

TARGET_PYTHON = "3.11"


def fail(msg):
    sys.stderr.write(f"error: medai bootstrap: {msg}\n")
    sys.exit(2)


def wheelhouse_stamp(wh):
    h = hashlib.sha256()
    for w in sorted(wh.glob("*.whl")):
        h.update(w.name.encode() + b"\0" + str(w.stat().st_size).encode() + b"\n")
        if w.name.startswith("medai-"):  # same version number across builds: hash its content
            h.update(hashlib.sha256(w.read_bytes()).hexdigest().encode())
    return h.hexdigest()


def ensure_venv(wh, venv):
    stamp_file = venv / ".medai-wheelhouse"
    stamp = wheelhouse_stamp(wh)
    py = venv / "bin" / "python"
    if py.is_file() and stamp_file.is_file() and stamp_file.read_text().strip() == stamp:
        return
    pip_wheels = sorted(wh.glob("pip-*.whl"))
    if not pip_wheels:
        fail(f"{wh}: no pip wheel in the wheelhouse (rebuild the bundle)")
    sys.stderr.write(f"medai bootstrap: installing medai into {venv} from {wh} (offline)\n")
    stamp_file.unlink(missing_ok=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", "--without-pip", str(venv)], check=True)
    # pip runs from its wheel (a zip with __main__), installs medai and pip itself into the venv
    cmd = [str(py), str(pip_wheels[-1] / "pip"), "install", "--isolated", "--no-index", "--find-links", str(wh),
           "--disable-pip-version-check", "--no-warn-script-location", "-q", "medai", "pip"]
    res = subprocess.run(cmd)
    if res.returncode != 0:
        fail(f"pip install from {wh} failed (exit {res.returncode}); the wheelhouse must match this host's Python")
    stamp_file.write_text(stamp + "\n")


def main(argv):
    bundle = Path(__file__).resolve().parent
    tools = bundle / "tools"
    wh = tools / "wheelhouse"
    if not wh.is_dir():
        fail(f"{wh}: missing; this bootstrap must sit at the root of a medai bundle")
    have = f"{sys.version_info[0]}.{sys.version_info[1]}"
    if have != TARGET_PYTHON:
        fail(f"this bundle's wheelhouse is for Python {TARGET_PYTHON}, {sys.executable} is {have}: "
             f"run it with python{TARGET_PYTHON}")
    home = Path(os.environ.get("MEDAI_HOME") or ".medai").resolve()
    venv = home / "venv"
    home.mkdir(parents=True, exist_ok=True)
    ensure_venv(wh, venv)
    env = dict(os.environ)
    env["MEDAI_ANSIBLE_DIR"] = str(tools / "ansible")
    env["ANSIBLE_COLLECTIONS_PATH"] = str(tools / "collections")
    env["MEDAI_HELM"] = str(tools / "helm")
    env["MEDAI_BUNDLE"] = str(bundle)
    env["PATH"] = os.pathsep.join([str(venv / "bin"), str(tools), env.get("PATH", "")])
    medai = venv / "bin" / "medai"
    os.execve(str(medai), [str(medai), *argv], env)


if __name__ == "__main__":
    main(sys.argv[1:])
