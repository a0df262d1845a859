#!/usr/bin/env python3
"""medai bootstrap: run medai from this bundle on a host that has python3 and nothing else, with no network.

    sha256sum -c site.bootstrap.sha256         # FIRST: the fingerprint you received out of band with site.pub
    python3 /media/usb/bundle/bootstrap.py bundle verify /media/usb/bundle --key site.pub

Nothing from the stick runs before its hash is checked: this file carries the sha256 of every wheel it installs
(WHEELS below; this file's own sha256 is the fingerprint `medai bundle build` printed and wrote beside the
public key). Each wheel is copied into a private directory, hashing as it is copied; any wheel that is missing,
swapped, or not listed (an added higher version, an sdist) stops the bootstrap naming the file, before pip runs.
pip then installs from that private copy only: --require-hashes --no-deps --only-binary=:all: --no-index.
medai itself checks the index signature with the site key (--key) before it uses anything else from the bundle.
Written by installer/collect/tools.py; it uses the standard library only.
"""
import hashlib
import os
import stat
import subprocess
import sys
from pathlib import Path

TARGET_PYTHON = "3.11"
WHEELS = {}  # file name -> sha256: filled in by `medai bundle build`
CHUNK = 1 << 20


def fail(msg):
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in msg)  # a hostile name stays on one line
    sys.stderr.write(f"error: medai bootstrap: {text}\n")
    sys.exit(2)


def wheelhouse_stamp():
    h = hashlib.sha256(TARGET_PYTHON.encode())
    for name in sorted(WHEELS):
        h.update(f"{WHEELS[name]}  {name}\n".encode())
    return h.hexdigest()


def checked_copy(wh, dest):
    """Copy every pinned wheel into `dest` (0700), hashing while copying; refuse anything unlisted or altered."""
    if not WHEELS:
        fail(f"{Path(__file__).name}: carries no wheel hashes (not written by `medai bundle build`)")
    for name in sorted(os.listdir(wh)):
        if name not in WHEELS:
            fail(f"{wh / name}: not one of the wheels this bootstrap.py pins (added to the stick?); nothing was run")
    dest.mkdir(parents=True, exist_ok=True, mode=0o700)
    for name, want in sorted(WHEELS.items()):
        if "/" in name or name.startswith(".") or not name.endswith(".whl"):
            fail(f"{name}: not a wheel file name")
        src = wh / name
        try:
            fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError as e:
            fail(f"{src}: {e.strerror} (a pinned wheel must be a regular file on the stick)")
        h = hashlib.sha256()
        tmp = dest / (name + ".part")
        with os.fdopen(fd, "rb") as f, open(tmp, "wb") as out:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                fail(f"{src}: not a regular file")
            while chunk := f.read(CHUNK):
                h.update(chunk)
                out.write(chunk)
        if h.hexdigest() != want:
            tmp.unlink()
            fail(f"{src}: sha256 {h.hexdigest()} is not the {want} this bootstrap.py pins (swapped?); nothing was run")
        os.replace(tmp, dest / name)


def ensure_venv(wh, home):
    venv = home / "venv"
    stamp_file = venv / ".medai-wheelhouse"
    stamp = wheelhouse_stamp()
    py = venv / "bin" / "python"
    if py.is_file() and stamp_file.is_file() and stamp_file.read_text().strip() == stamp:
        return venv
    private = home / "wheelhouse" / stamp[:16]
    checked_copy(wh, private)
    pip_wheels = sorted(n for n in WHEELS if n.startswith("pip-"))
    if not pip_wheels:
        fail(f"{wh}: no pip wheel pinned (rebuild the bundle)")
    sys.stderr.write(f"medai bootstrap: installing medai into {venv} from {private} (offline, every wheel hash-checked)\n")
    stamp_file.unlink(missing_ok=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", "--without-pip", str(venv)], check=True)
    req = private / "requirements.txt"
    req.write_text("".join(f"{private / n} --hash=sha256:{WHEELS[n]}\n" for n in sorted(WHEELS)))
    # pip runs from its own (checked) wheel, a zip with __main__; the environment is not passed on
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR") if k in os.environ}
    env["PIP_CONFIG_FILE"] = os.devnull
    cmd = [str(py), str(private / pip_wheels[-1] / "pip"), "install", "--isolated", "--no-index", "--no-deps",
           "--only-binary=:all:", "--require-hashes", "--disable-pip-version-check", "--no-warn-script-location",
           "-q", "-r", str(req)]
    res = subprocess.run(cmd, env=env)
    if res.returncode != 0:
        fail(f"pip install from {private} failed (exit {res.returncode}); the wheelhouse must match this host's Python")
    stamp_file.write_text(stamp + "\n")
    return venv


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
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    venv = ensure_venv(wh, home)
    env = dict(os.environ)
    # Ansible content and collections are taken from install's verified working copy of the bundle, not from
    # here; these only tell medai that it runs from a bundle (see installer.deploy.runner).
    env["MEDAI_ANSIBLE_DIR"] = str(tools / "ansible")
    env["MEDAI_BUNDLE"] = str(bundle)
    env["PATH"] = os.pathsep.join([str(venv / "bin"), env.get("PATH", "")])
    medai = venv / "bin" / "medai"
    os.execve(str(medai), [str(medai), *argv], env)


if __name__ == "__main__":
    main(sys.argv[1:])
