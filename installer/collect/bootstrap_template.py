#!/usr/bin/env python3
"""medai bootstrap: run medai from this bundle on a host that has python3 and nothing else, with no network.

    sha256sum -c site.bootstrap.sha256         # FIRST: the fingerprint you received out of band with site.pub
    python3 -I /media/usb/bundle/bootstrap.py bundle verify /media/usb/bundle --key site.pub

Nothing from the stick runs before its hash is checked. Python puts the script's directory (the stick) first on
sys.path, so a `hashlib.py` planted beside this file would be imported instead of the standard library: this
file therefore runs isolated (-I: no script or current directory on sys.path, no user site, no PYTHON*
variables) and, started without -I, re-executes itself with it before it imports anything but built-in modules.
It carries the sha256 of every wheel it installs (WHEELS below; this file's own sha256 is the fingerprint
`medai bundle build` printed and wrote beside the public key). Each wheel is copied into a private directory,
hashing as it is copied; any wheel that is missing, swapped, or not listed (an added higher version, an sdist)
stops the bootstrap naming the file, before pip runs. pip then installs from that private copy only:
--require-hashes --no-deps --only-binary=:all: --no-index. The venv lives in the state directory
($MEDAI_HOME, default /var/lib/medai: root-owned, never on the bundle's filesystem); a venv is reused only when
every file matches the record this script wrote inside it, else it is built afresh.
medai itself checks the index signature with the site key (--key) before it uses anything else from the bundle.
Written by installer/collect/tools.py; it uses the standard library only.
"""
import sys

if not sys.flags.isolated:
    # `sys` and `posix` are built into the interpreter: no file on sys.path can stand in for them.
    import posix

    if not sys.executable:
        sys.stderr.write("error: medai bootstrap: cannot name this Python interpreter to re-run it isolated: "
                         "run python3 -I bootstrap.py\n")
        sys.exit(2)
    posix.execv(sys.executable, [sys.executable, "-I", *sys.argv])

import hashlib  # noqa: E402  (only once isolated: nothing from the stick or the current directory is on sys.path)
import os  # noqa: E402
import shutil  # noqa: E402
import stat  # noqa: E402
import subprocess  # noqa: E402
from pathlib import Path  # noqa: E402

TARGET_PYTHON = "3.11"
WHEELS = {}  # file name -> sha256: filled in by `medai bundle build`
CHUNK = 1 << 20
# No wheel of medai's set comes near this (the largest are a few MiB): a bigger file is refused before it is read.
MAX_WHEEL = 256 << 20
STATE_HOME = "/var/lib/medai"  # the default $MEDAI_HOME (installer.core.resources.STATE_HOME says the same)
RECORD = ".medai-record"  # inside the venv: the sha256 of every file this script installed there


def fail(msg):
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in msg)  # a hostile name stays on one line
    sys.stderr.write(f"error: medai bootstrap: {text}\n")
    sys.exit(2)


def wheelhouse_stamp():
    h = hashlib.sha256(TARGET_PYTHON.encode())
    for name in sorted(WHEELS):
        h.update(f"{WHEELS[name]}  {name}\n".encode())
    return h.hexdigest()


def system_devices():
    """The filesystems of the host itself ("/" and the default state directory's parent): never the stick."""
    devs = set()
    for d in ("/", os.path.dirname(STATE_HOME)):
        try:
            devs.add(os.stat(d).st_dev)
        except OSError:
            pass
    return devs


def state_home(bundle):
    """$MEDAI_HOME (default /var/lib/medai), created 0700 if missing; refused, named, when it is a symlink, not
    owned by us (root), writable by others, inside the bundle or on the bundle's (removable) filesystem."""
    raw = os.environ.get("MEDAI_HOME") or STATE_HOME
    if not os.path.isabs(raw):
        fail(f"MEDAI_HOME={raw}: not an absolute path (the state directory is never relative to the current one)")
    home = Path(os.path.normpath(raw))
    if home == bundle or bundle in home.parents:
        fail(f"{home}: the state directory is inside the bundle {bundle}: refused (set MEDAI_HOME elsewhere)")
    try:
        home.mkdir(parents=True, exist_ok=True, mode=0o700)
        st = os.lstat(home)
    except OSError as e:
        fail(f"{home}: cannot create the state directory ({e.strerror})")
    if not stat.S_ISDIR(st.st_mode):
        fail(f"{home}: the state directory is not a directory (a symlink is refused)")
    if st.st_uid != os.geteuid() or st.st_mode & 0o022:
        fail(f"{home}: the state directory must be owned by uid {os.geteuid()} and writable by no one else "
             f"(owner {st.st_uid}, mode {stat.S_IMODE(st.st_mode):o})")
    if st.st_dev == os.stat(bundle).st_dev and st.st_dev not in system_devices():
        fail(f"{home}: the state directory is on the bundle's filesystem ({bundle}): refused; "
             f"use the default {STATE_HOME} or another local directory")
    return home


def open_regular(path):
    """A file from the stick: no symlink, no blocking open (a FIFO), and a regular file before it is read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as e:
        fail(f"{path}: {e.strerror} (a pinned wheel must be a regular file on the stick)")
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        fail(f"{path}: not a regular file (a FIFO, socket, device or directory is refused); nothing was run")
    return os.fdopen(fd, "rb")


def checked_copy(wh, dest):
    """Copy every pinned wheel into `dest` (0700, made afresh), hashing while copying; refuse anything unlisted or
    altered."""
    if not WHEELS:
        fail(f"{Path(__file__).name}: carries no wheel hashes (not written by `medai bundle build`)")
    for name in sorted(os.listdir(wh)):
        if name not in WHEELS:
            fail(f"{wh / name}: not one of the wheels this bootstrap.py pins (added to the stick?); nothing was run")
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True, mode=0o700)
    for name, want in sorted(WHEELS.items()):
        if "/" in name or name.startswith(".") or not name.endswith(".whl"):
            fail(f"{name}: not a wheel file name")
        src = wh / name
        h = hashlib.sha256()
        tmp = dest / (name + ".part")
        with open_regular(src) as f, open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600),
                                          "wb") as out:
            if os.fstat(f.fileno()).st_size > MAX_WHEEL:
                fail(f"{src}: larger than any wheel this bootstrap.py pins ({MAX_WHEEL >> 20} MiB); nothing was run")
            copied = 0
            while chunk := f.read(CHUNK):
                copied += len(chunk)
                if copied > MAX_WHEEL:  # grew while being read
                    fail(f"{src}: larger than any wheel this bootstrap.py pins; nothing was run")
                h.update(chunk)
                out.write(chunk)
        if h.hexdigest() != want:
            tmp.unlink()
            fail(f"{src}: sha256 {h.hexdigest()} is not the {want} this bootstrap.py pins (swapped?); nothing was run")
        os.replace(tmp, dest / name)


def venv_entries(venv):
    """{relative path: "file <sha256> <mode>" | "link <target>" | "dir <mode>"} for everything in the venv."""
    out = {}
    for top, dirs, files in os.walk(venv):
        for name in dirs + files:
            full = os.path.join(top, name)
            rel = os.path.relpath(full, venv)
            if rel == RECORD:
                continue
            st = os.lstat(full)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = f"link {os.readlink(full)}"
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = f"dir {stat.S_IMODE(st.st_mode):o}"
            elif stat.S_ISREG(st.st_mode):
                h = hashlib.sha256()
                with open(os.open(full, os.O_RDONLY | os.O_NOFOLLOW), "rb") as f:
                    while chunk := f.read(CHUNK):
                        h.update(chunk)
                out[rel] = f"file {h.hexdigest()} {stat.S_IMODE(st.st_mode):o}"
            else:
                out[rel] = "special"
    return out


def record_text(stamp, entries):
    return stamp + "\n" + "".join(f"{entries[k]}\t{k}\n" for k in sorted(entries))


def venv_matches_record(venv, stamp):
    """True when the venv holds exactly what this script recorded after installing it, for this wheelhouse."""
    try:
        st = os.lstat(venv / RECORD)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
            return False
        recorded = (venv / RECORD).read_text()
    except (OSError, UnicodeDecodeError):
        return False
    if not recorded.startswith(stamp + "\n"):
        return False
    return recorded == record_text(stamp, venv_entries(venv))


def ensure_venv(wh, home):
    venv = home / "venv"
    stamp = wheelhouse_stamp()
    py = venv / "bin" / "python"
    if venv_matches_record(venv, stamp):
        return venv
    if os.path.lexists(venv):
        sys.stderr.write(f"medai bootstrap: {venv} does not match its record (or has none): building it afresh\n")
    private = home / "wheelhouse" / stamp[:16]
    checked_copy(wh, private)
    pip_wheels = sorted(n for n in WHEELS if n.startswith("pip-"))
    if not pip_wheels:
        fail(f"{wh}: no pip wheel pinned (rebuild the bundle)")
    sys.stderr.write(f"medai bootstrap: installing medai into {venv} from {private} (offline, every wheel hash-checked)\n")
    if os.path.islink(venv) or (os.path.lexists(venv) and not os.path.isdir(venv)):
        os.unlink(venv)
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([sys.executable, "-I", "-m", "venv", "--clear", "--without-pip", str(venv)], check=True)
    req = private / "requirements.txt"
    req.write_text("".join(f"{private / n} --hash=sha256:{WHEELS[n]}\n" for n in sorted(WHEELS)))
    # pip runs from its own (checked) wheel, a zip with __main__; the environment is not passed on
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR") if k in os.environ}
    env["PIP_CONFIG_FILE"] = os.devnull
    cmd = [str(py), str(private / pip_wheels[-1] / "pip"), "install", "--isolated", "--no-index", "--no-deps",
           "--only-binary=:all:", "--require-hashes", "--disable-pip-version-check", "--no-warn-script-location",
           "-q", "-r", str(req)]
    res = subprocess.run(cmd, env=env, cwd=private)
    if res.returncode != 0:
        fail(f"pip install from {private} failed (exit {res.returncode}); the wheelhouse must match this host's Python")
    fd = os.open(venv / RECORD, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with open(fd, "w") as f:
        f.write(record_text(stamp, venv_entries(venv)))
    return venv


def main(argv):
    bundle = Path(os.path.realpath(__file__)).parent
    tools = bundle / "tools"
    wh = tools / "wheelhouse"
    if not wh.is_dir():
        fail(f"{wh}: missing; this bootstrap must sit at the root of a medai bundle")
    have = f"{sys.version_info[0]}.{sys.version_info[1]}"
    if have != TARGET_PYTHON:
        fail(f"this bundle's wheelhouse is for Python {TARGET_PYTHON}, {sys.executable} is {have}: "
             f"run it with python{TARGET_PYTHON}")
    home = state_home(bundle)
    venv = ensure_venv(wh, home)
    env = dict(os.environ)
    # Ansible content and collections are taken from install's verified working copy of the bundle, not from
    # here; these only tell medai that it runs from a bundle (see installer.deploy.runner).
    env["MEDAI_ANSIBLE_DIR"] = str(tools / "ansible")
    env["MEDAI_BUNDLE"] = str(bundle)
    env["MEDAI_HOME"] = str(home)
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # the venv stays exactly as recorded
    env["PATH"] = os.pathsep.join([str(venv / "bin"), env.get("PATH", "")])
    medai = venv / "bin" / "medai"
    os.execve(str(medai), [str(medai), *argv], env)


if __name__ == "__main__":
    main(sys.argv[1:])
