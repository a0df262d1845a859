"""bootstrap.py that no file on the stick can subvert.

A real, offline bootstrap run on a small bundle: the system's pip wheel and a hand-made `medai` wheel whose
console script prints a line. No network, no project wheelhouse needed.
"""
from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import sys
import time
import uuid
import zipfile
from pathlib import Path

import pytest

from installer.collect import tools
from installer.core.hashing import sha256_file

SYSTEM_PYTHON = "/usr/bin/python3"
PIP_WHEELS = sorted(Path("/usr/share/python-wheels").glob("pip-*.whl"))
# Every module bootstrap.py imports, and a few it might: a file of that name on the stick must never run.
PLANTED = ("hashlib", "os", "shutil", "stat", "subprocess", "pathlib", "posix", "encodings", "venv", "site",
           "sitecustomize", "usercustomize", "io", "abc", "_sha256", "json", "zipfile", "tempfile")


def _system_python_311() -> bool:
    if not Path(SYSTEM_PYTHON).is_file():
        return False
    out = subprocess.run([SYSTEM_PYTHON, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                         capture_output=True, text=True)
    return out.stdout.strip() == "3.11"


needs_bootstrap_python = pytest.mark.skipif(not (_system_python_311() and PIP_WHEELS),
                                            reason="needs /usr/bin/python3 3.11 and /usr/share/python-wheels/pip-*.whl")


def _plant(where: Path, marker: Path) -> None:
    code = f"open({str(marker)!r}, 'a').write(__name__ + ' ran from ' + __file__ + '\\n')\n"
    for name in PLANTED:
        (where / f"{name}.py").write_text(code)


def _fake_medai_wheel(dest: Path) -> Path:
    """A wheel named medai with a `medai` console script that prints its arguments."""
    files = {
        "medai_fake/__init__.py": "import sys\ndef main():\n    print('fake medai ran', *sys.argv[1:])\n",
        "medai-0.0.1.dist-info/METADATA": "Metadata-Version: 2.1\nName: medai\nVersion: 0.0.1\n",
        "medai-0.0.1.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        "medai-0.0.1.dist-info/entry_points.txt": "[console_scripts]\nmedai = medai_fake:main\n",
    }
    record = ""
    for name, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record += f"{name},sha256={digest},{len(text.encode())}\n"
    record += "medai-0.0.1.dist-info/RECORD,,\n"
    path = dest / "medai-0.0.1-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as z:
        for name, text in files.items():
            z.writestr(name, text)
        z.writestr("medai-0.0.1.dist-info/RECORD", record)
    return path


def _mini_bundle(root: Path) -> Path:
    wh = root / "tools" / "wheelhouse"
    wh.mkdir(parents=True)
    shutil.copy2(PIP_WHEELS[-1], wh / PIP_WHEELS[-1].name)
    _fake_medai_wheel(wh)
    wheels = {p.name: sha256_file(p) for p in wh.iterdir()}
    (root / "bootstrap.py").write_text(tools.bootstrap_source("3.11", wheels))
    return root


def _env(home: Path | None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHON", "VIRTUAL_ENV", "MEDAI_"))}
    env.update({"PATH": "/usr/bin:/bin", "PIP_CONFIG_FILE": "/dev/null", "PIP_NO_INDEX": "1"}, **extra)
    if home is not None:
        env["MEDAI_HOME"] = str(home)
    return env


def _run(bundle: Path, home: Path | None, *args: str, python: str = SYSTEM_PYTHON, cwd: Path | None = None,
         flags: tuple[str, ...] = (), **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([python, *flags, str(bundle / "bootstrap.py"), *args], env=_env(home, **env),
                          cwd=cwd or bundle.parent, capture_output=True, text=True, timeout=300)


# ---------------------------------------------------------------- item 1: isolated


@pytest.mark.parametrize("flags", [(), ("-I",)], ids=["plain", "isolated"])
def test_modules_planted_beside_bootstrap_and_in_cwd_never_run(tmp_path, flags):
    """`python3 /media/usb/bundle/bootstrap.py` puts the stick first on sys.path: a planted hashlib.py (and
    every other module bootstrap imports) beside it or in the current directory never runs."""
    stick = tmp_path / "stick"
    cwd = tmp_path / "cwd"
    stick.mkdir()
    cwd.mkdir()
    (stick / "bootstrap.py").write_text(tools.bootstrap_source("3.11", {}))
    marker = tmp_path / "PWNED"
    _plant(stick, marker)
    _plant(cwd, marker)
    r = subprocess.run([sys.executable, *flags, str(stick / "bootstrap.py"), "--help"], cwd=cwd, capture_output=True,
                       text=True, timeout=60, env={**os.environ, "MEDAI_HOME": str(tmp_path / "h")})
    assert not marker.exists(), f"code from the stick ran: {marker.read_text()}"
    assert r.returncode == 2 and "tools/wheelhouse: missing" in r.stderr, r.stderr


def test_readme_runs_bootstrap_isolated():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    runs = [ln for ln in readme.splitlines() if "bootstrap.py " in ln and ln.strip().startswith("python3")]
    assert runs and all(ln.strip().startswith("python3 -I ") for ln in runs), runs


# ---------------------------------------------------------------- item 2: the state directory


def test_state_directory_defaults_to_a_fixed_system_path(monkeypatch, tmp_path):
    from installer.core import resources

    monkeypatch.delenv("MEDAI_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    assert resources.state_dir() == Path("/var/lib/medai") == Path(resources.STATE_HOME)
    assert 'STATE_HOME = "/var/lib/medai"' in tools.bootstrap_source("3.11", {})


def _other_filesystem() -> Path | None:
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK) and shm.stat().st_dev not in {Path("/").stat().st_dev,
                                                                            Path("/var/lib").stat().st_dev}:
        return shm
    return None


@pytest.fixture
def removable(tmp_path):
    """A directory on another filesystem than the host's own (tmpfs /dev/shm stands in for the stick)."""
    base = _other_filesystem()
    if base is None:
        pytest.skip("needs a writable /dev/shm on its own filesystem")
    d = base / f"medai-test-{uuid.uuid4().hex[:12]}"
    d.mkdir()
    yield d
    shutil.rmtree(d, ignore_errors=True)


@needs_bootstrap_python
def test_state_on_the_bundles_filesystem_is_refused(removable):
    stick = _mini_bundle(removable / "bundle")
    home = removable / "state"
    r = _run(stick, home, "--help")
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert f"{home}: the state directory is on the bundle's filesystem" in r.stderr
    assert not (home / "venv").exists()
    inside = _run(stick, stick / ".medai", "--help")
    assert inside.returncode == 2 and "is inside the bundle" in inside.stderr


@needs_bootstrap_python
def test_state_not_ours_or_writable_by_others_is_refused(tmp_path):
    stick = _mini_bundle(tmp_path / "bundle")
    home = tmp_path / "state"
    home.mkdir()
    home.chmod(0o777)
    r = _run(stick, home, "--help")
    assert r.returncode == 2 and f"{home}: the state directory must be owned by uid" in r.stderr, r.stderr
    home.chmod(0o700)
    if os.geteuid() == 0:
        os.chown(home, 4242, 4242)
        r = _run(stick, home, "--help")
        assert r.returncode == 2 and "owner 4242" in r.stderr
        os.chown(home, 0, 0)
    link = tmp_path / "link-home"
    link.symlink_to(home)
    r = _run(stick, link, "--help")
    assert r.returncode == 2 and "a symlink is refused" in r.stderr
    rel = _run(stick, None, "--help", MEDAI_HOME="relative/home")
    assert rel.returncode == 2 and "not an absolute path" in rel.stderr


@needs_bootstrap_python
def test_venv_is_reused_only_while_it_matches_its_own_record(tmp_path):
    stick = _mini_bundle(tmp_path / "bundle")
    home = tmp_path / "state"
    first = _run(stick, home, "hello")
    assert first.returncode == 0, first.stderr
    assert "fake medai ran hello" in first.stdout and "installing medai" in first.stderr
    again = _run(stick, home, "again")
    assert again.returncode == 0 and "installing medai" not in again.stderr and "fake medai ran again" in again.stdout

    # A file planted in the venv (as on a stick that held the state before): the venv is rebuilt, it never runs.
    marker = tmp_path / "PWNED"
    site = next((home / "venv" / "lib").glob("python3*/site-packages"))
    (site / "sitecustomize.py").write_text(f"open({str(marker)!r}, 'w').write('planted')\n")
    r = _run(stick, home, "x")
    assert r.returncode == 0, r.stderr
    assert "does not match its record" in r.stderr and "installing medai" in r.stderr
    assert not marker.exists() and not (site / "sitecustomize.py").exists()

    # An altered file: rebuilt as well.
    init = site / "medai_fake" / "__init__.py"
    init.write_text(f"open({str(marker)!r}, 'w').write('altered')\n")
    r = _run(stick, home, "y")
    assert r.returncode == 0 and "does not match its record" in r.stderr and "fake medai ran y" in r.stdout
    assert not marker.exists()


@needs_bootstrap_python
def test_fifo_in_place_of_a_pinned_wheel_is_refused_not_waited_on(tmp_path):
    stick = _mini_bundle(tmp_path / "bundle")
    wheel = stick / "tools" / "wheelhouse" / "medai-0.0.1-py3-none-any.whl"
    wheel.unlink()
    os.mkfifo(wheel)
    r = _run(stick, tmp_path / "state", "--help")
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert f"{wheel}: not a regular file" in r.stderr and "nothing was run" in r.stderr


def test_a_wheel_larger_than_any_pinned_one_is_refused_before_it_is_read(tmp_path):
    """A 40 GiB sparse file in place of a pinned wheel: refused by its size at once, not hashed to the end."""
    stick = _mini_bundle(tmp_path / "bundle")
    wheel = stick / "tools" / "wheelhouse" / "medai-0.0.1-py3-none-any.whl"
    with open(wheel, "r+b") as f:
        f.truncate(40 << 30)
    started = time.monotonic()
    r = _run(stick, tmp_path / "state", "--help")
    assert r.returncode == 2 and f"{wheel}: larger than any wheel this bootstrap.py pins" in r.stderr, r.stderr
    assert time.monotonic() - started < 30
