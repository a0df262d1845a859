"""The installer travels with the bundle (installer/collect/tools.py): wheelhouse, collections, helm, playbooks and
bootstrap.py, proven by bootstrapping medai with NO package index reachable.

The dependency wheels (~65 MB) are resolved once and cached in ~/.cache/medai-test/wheelhouse/<pyproject key>.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from installer.bundle.layout import BundleLayout
from installer.collect import tools
from installer.core.errors import SourceError
from installer.core.hashing import sha256_file

TEST_CACHE = Path(os.environ.get("MEDAI_TEST_CACHE", Path.home() / ".cache" / "medai-test"))
SYSTEM_PYTHON = "/usr/bin/python3"


def offline_env(home: Path) -> dict[str, str]:
    """No index, no find-links, no pip config (this machine's /etc/xdg/pip and PIP_FIND_LINKS are neutralised),
    and nothing from the project venv on PATH: the wheelhouse alone must suffice."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PIP_", "VIRTUAL_ENV", "PYTHON")) and k not in ("PATH",)}
    env.update({
        "PIP_INDEX_URL": "http://127.0.0.1:9/simple",  # discard port: nothing listens
        "PIP_NO_INDEX": "1",
        "PIP_CONFIG_FILE": "/dev/null",
        "PATH": "/usr/bin:/bin",
        "MEDAI_HOME": str(home),
    })
    return env


@pytest.fixture(scope="session")
def tools_bundle(tmp_path_factory):
    layout = BundleLayout.at(tmp_path_factory.mktemp("tools-bundle"))
    files = tools.stage_tools(layout, cache_dir=TEST_CACHE / "wheelhouse", collections=["ansible.posix"])
    return layout, files


@pytest.mark.network
def test_files_are_listed_with_their_sha256(tools_bundle):
    layout, files = tools_bundle
    on_disk = {p.relative_to(layout.root).as_posix() for p in layout.root.rglob("*")
               if p.is_file() and ".tmp" not in p.relative_to(layout.root).parts}
    assert set(files) == on_disk
    for rel in ("bootstrap.py", "tools/helm", "tools/collections/ansible_collections/ansible/posix/MANIFEST.json"):
        assert files[rel] == sha256_file(layout.root / rel)
    assert os.access(layout.root / "tools/helm", os.X_OK)
    wheels = [p for p in files if p.startswith("tools/wheelhouse/")]
    assert any(Path(p).name.startswith("medai-") for p in wheels)
    assert any(Path(p).name.startswith("ansible_core-") for p in wheels)
    assert any(Path(p).name.startswith("pip-") for p in wheels)
    assert not any("/molecule/" in p for p in files), "molecule scenarios stay out of the bundle"
    arts = {a.name: a for a in tools.tools_artifacts(files)}
    assert set(arts) >= {"wheelhouse", "collections", "helm", "bootstrap"}
    assert all(a.kind == "tool" for a in arts.values())
    assert arts["helm"].sha256 == files["tools/helm"]


@pytest.mark.network  # the wheelhouse is collected from PyPI first (connected side); the run itself is offline
@pytest.mark.skipif(not Path(SYSTEM_PYTHON).is_file(), reason="needs the system python3")
def test_bootstrap_runs_medai_with_no_package_index(tools_bundle, tmp_path):
    layout, _ = tools_bundle
    check = subprocess.run([SYSTEM_PYTHON, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                           capture_output=True, text=True)
    if check.stdout.strip() != "3.11":
        pytest.skip(f"{SYSTEM_PYTHON} is {check.stdout.strip()}, the wheelhouse targets 3.11")
    home = tmp_path / "home"
    env = offline_env(home)
    first = subprocess.run([SYSTEM_PYTHON, str(layout.root / "bootstrap.py"), "--help"], env=env, cwd=tmp_path,
                           capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "installing medai" in first.stderr and "install" in first.stdout and "bundle" in first.stdout

    venv = home / "venv"
    where = subprocess.run([str(venv / "bin/python"), "-c",
                            "import installer, importlib.metadata as m; print(installer.__file__); print(m.version('medai'))"],
                           env=env, cwd=tmp_path, capture_output=True, text=True)
    assert where.returncode == 0, where.stderr
    assert str(venv) in where.stdout, "medai must come from the venv's wheel, not the working tree"

    # idempotent: the second run reuses the venv
    second = subprocess.run([SYSTEM_PYTHON, str(layout.root / "bootstrap.py"), "bundle", "--help"], env=env,
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stderr
    assert "installing medai" not in second.stderr and "verify" in second.stdout

    # the bundled collections are usable by the venv's ansible
    env_c = {**env, "ANSIBLE_COLLECTIONS_PATH": str(layout.root / "tools/collections")}
    listed = subprocess.run([str(venv / "bin/ansible-galaxy"), "collection", "list", "--format", "json"],
                            env=env_c, cwd=tmp_path, capture_output=True, text=True)
    assert listed.returncode == 0, listed.stderr
    found = {name for paths in json.loads(listed.stdout).values() for name in paths}
    assert "ansible.posix" in found


def test_bootstrap_refuses_another_python_in_one_line(tmp_path):
    (tmp_path / "tools/wheelhouse").mkdir(parents=True)
    (tmp_path / "bootstrap.py").write_text(tools.bootstrap_source("3.99"))
    res = subprocess.run([sys.executable, str(tmp_path / "bootstrap.py"), "--help"], capture_output=True, text=True,
                         env={**os.environ, "MEDAI_HOME": str(tmp_path / "h")})
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1 and "wheelhouse is for Python 3.99" in res.stderr
    (tmp_path / "tools/wheelhouse").rmdir()
    res = subprocess.run([sys.executable, str(tmp_path / "bootstrap.py")], capture_output=True, text=True)
    assert res.returncode == 2 and "tools/wheelhouse: missing" in res.stderr


def test_collections_used_finds_fqcns_outside_molecule(tmp_path):
    roles = tmp_path / "roles"
    (roles / "r/tasks").mkdir(parents=True)
    (roles / "r/molecule/default").mkdir(parents=True)
    (roles / "r/tasks/main.yml").write_text(
        "- name: a\n  ansible.posix.sysctl:\n    name: x\n"
        "- name: b\n  ansible.builtin.copy: {}\n"
        "- name: c\n  ansible.builtin.debug:\n    msg: \"{{ x | community.general.json_query('a') }}\"\n"
        "- name: d\n  ansible.builtin.debug:\n    msg: \"{{ ansible_facts.default_ipv4.address }}\"\n")
    (roles / "r/molecule/default/converge.yml").write_text("- containers.podman.podman_container: {}\n")
    (roles / "r/defaults").mkdir()
    (roles / "r/defaults/main.yml").write_text("sysctl:\n  net.ipv4.ip_forward: '1'\n")
    assert tools.collections_used([roles]) == {"ansible.posix", "community.general"}


def test_missing_collection_and_helm_are_one_line_errors(tmp_path):
    with pytest.raises(SourceError, match=r"tools/collections: nosuch\.thing is used by the roles/playbooks but not installed"):
        tools.copy_collections(tmp_path / "c", {"nosuch.thing"}, lambda m: None)
    with pytest.raises(SourceError, match="tools/helm: helm binary not found at"):
        tools._copy_helm(tmp_path / "helm", tmp_path / "no-helm")


def test_target_arguments_pin_python_and_platform():
    args = tools._target_args("3.11", ("manylinux2014_x86_64", "manylinux_2_28_x86_64"))
    assert args[:3] == ["--only-binary=:all:", "--python-version", "3.11"]
    assert "cp311" in args and args.count("--platform") == 2


# ---------------------------------------------------------------- the verifier travels verified


@pytest.fixture
def stick(tools_bundle, tmp_path):
    """A private copy of the tools bundle to tamper with."""
    import shutil

    layout, _ = tools_bundle
    dst = tmp_path / "stick"
    shutil.copytree(layout.root, dst, symlinks=True, ignore=shutil.ignore_patterns(".tmp"))
    return dst


def _evil_wheel(path: Path, marker: Path) -> None:
    """A wheel (zip) whose code, if anything ran it (pip as `python pip.whl/pip`, or an import), leaves a marker."""
    import zipfile

    code = f"open({str(marker)!r}, 'w').write('attacker code ran')\n"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("pip/__main__.py", code)
        z.writestr("pip/__init__.py", code)
        z.writestr("installer/__init__.py", code)


def _bootstrap(stick: Path, home: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([SYSTEM_PYTHON, str(stick / "bootstrap.py"), *args], env=offline_env(home), cwd=stick.parent,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.network  # uses the wheelhouse collected from PyPI (tools_bundle)
def test_bootstrap_pins_every_wheel_of_the_wheelhouse(tools_bundle):
    layout, files = tools_bundle
    text = (layout.root / "bootstrap.py").read_text()
    for rel, sha in files.items():
        if rel.startswith("tools/wheelhouse/"):
            assert f"{Path(rel).name!r}: {sha!r}" in text
    assert "--require-hashes" in text and "--only-binary=:all:" in text and "--no-deps" in text


@pytest.mark.network  # the stick is a copy of tools_bundle, collected from PyPI
@pytest.mark.skipif(not Path(SYSTEM_PYTHON).is_file(), reason="needs the system python3")
@pytest.mark.parametrize("case", ["swapped-pip", "swapped-medai", "added-higher-version", "added-sdist"])
def test_tampered_wheelhouse_stops_before_any_code_runs(stick, tmp_path, case):
    wh = stick / "tools" / "wheelhouse"
    marker = tmp_path / "PWNED"
    if case.startswith("swapped"):
        victim = next(wh.glob(("pip-" if case == "swapped-pip" else "medai-") + "*.whl"))
        _evil_wheel(victim, marker)
    elif case == "added-higher-version":
        victim = wh / "medai-99.0.0-py3-none-any.whl"
        _evil_wheel(victim, marker)
    else:
        victim = wh / "medai-99.0.0.tar.gz"
        victim.write_bytes(b"not even a tarball")
    home = tmp_path / "home"
    r = _bootstrap(stick, home, "bundle", "verify", str(stick))
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1 and str(victim) in r.stderr and "nothing was run" in r.stderr
    assert not marker.exists(), "code from the stick ran before its hash was checked"
    assert not (home / "venv").exists()


@pytest.mark.network  # the stick is a copy of tools_bundle, collected from PyPI
@pytest.mark.skipif(not Path(SYSTEM_PYTHON).is_file(), reason="needs the system python3")
def test_edited_bootstrap_is_named_by_the_fingerprint_check(stick, tmp_path):
    """The operator's step one behind the gap: `sha256sum -c site.bootstrap.sha256` in the bundle directory."""
    pub = tmp_path / "site.pub"
    pub.write_text("(the public key travels beside it)\n")
    sha, fp = tools.write_bootstrap_fingerprint(stick / "bootstrap.py", pub)
    assert fp == tmp_path / "site.bootstrap.sha256" and fp.read_text() == f"{sha}  bootstrap.py\n"
    ok = subprocess.run(["sha256sum", "-c", str(fp)], cwd=stick, capture_output=True, text=True)
    assert ok.returncode == 0 and "bootstrap.py: OK" in ok.stdout
    boot = stick / "bootstrap.py"
    boot.write_text(boot.read_text().replace("WHEELS = {", "WHEELS = {'evil-1.0-py3-none-any.whl': '" + "0" * 64 + "',", 1))
    bad = subprocess.run(["sha256sum", "-c", str(fp)], cwd=stick, capture_output=True, text=True)
    assert bad.returncode != 0 and "bootstrap.py: FAILED" in bad.stdout


@pytest.mark.network  # uses the wheelhouse collected from PyPI (tools_bundle)
def test_build_writes_the_fingerprint_beside_the_public_key(tools_bundle, tmp_path):
    from installer.collect.build import BuildOptions
    from installer.collect.steps.finish import bootstrap_fingerprint

    layout, files = tools_bundle
    opts = BuildOptions(manifest=tmp_path / "m.yaml", out=layout.root, sign_key=tmp_path / "keys" / "site.key")
    (tmp_path / "keys").mkdir()
    sha, where = bootstrap_fingerprint(layout.root, opts)
    assert sha == files["bootstrap.py"] and where == str(tmp_path / "keys" / "site.bootstrap.sha256")
    assert Path(where).read_text() == f"{sha}  bootstrap.py\n"
    unsigned = BuildOptions(manifest=tmp_path / "m.yaml", out=layout.root)
    assert bootstrap_fingerprint(layout.root, unsigned) == (sha, None)


# ---------------------------------------------------------------- the key password stays out of builds


SDIST_SETUP = """
import json, os
from setuptools import setup
with open({dump!r}, "w") as f:
    json.dump(dict(os.environ), f)
setup(name="envdump", version="1.0", py_modules=[])
"""


@pytest.mark.network
def test_sdist_build_code_never_sees_the_key_password(tmp_path, monkeypatch):
    """pip builds an sdist-only dependency by running its setup.py (PyPI code): after the signing key was
    unlocked, the password is gone from our environment, and pip gets an allow-listed one anyway."""
    from installer.trust.keys import PASSWORD_ENV, generate_keypair
    from installer.trust.signing import resolve_key

    password = "build-time-key-password-42"
    key, _ = generate_keypair(tmp_path / "site", password.encode())
    monkeypatch.setenv(PASSWORD_ENV, password)
    resolve_key(key)  # what `bundle build --sign-key` does first
    assert PASSWORD_ENV not in os.environ
    monkeypatch.setenv("SOME_CLOUD_TOKEN", "cloud-token-value-123456")  # an operator's unrelated secret
    monkeypatch.setenv(PASSWORD_ENV, password)  # even if something set it again
    src = tmp_path / "envdump"
    src.mkdir()
    dump = tmp_path / "env.json"
    (src / "setup.py").write_text(SDIST_SETUP.format(dump=str(dump)))
    deps = tmp_path / "deps"
    deps.mkdir()
    tools._build_pure_wheel(str(src), deps)
    seen = json.loads(dump.read_text())
    assert seen, "setup.py ran"
    text = json.dumps(seen)
    assert password not in text and PASSWORD_ENV not in seen
    assert "cloud-token-value-123456" not in text
    assert list(deps.glob("envdump-1.0-*.whl"))


@pytest.mark.network  # uses the wheelhouse collected from PyPI (tools_bundle)
def test_wheels_are_locked_and_locked_catches_a_changed_wheel(tools_bundle, tmp_path):
    from installer.bundle.lock import Lock, check_wheel_pins, lock_wheels
    from installer.core.errors import LockDriftError

    layout, files = tools_bundle
    wheels = lock_wheels(files)
    assert wheels and not any(n.startswith("medai-") for n in wheels) and any(n.startswith("ansible_core-") for n in wheels)
    lock = Lock(wheels=wheels)
    lock.write(tmp_path / "l.yaml")
    again = Lock.load(tmp_path / "l.yaml")
    assert again.wheels == wheels
    check_wheel_pins(again, wheels)
    name = sorted(wheels)[0]
    with pytest.raises(LockDriftError, match=f"wheel {name}: sha256 0+, the lock says"):
        check_wheel_pins(again, {**wheels, name: "0" * 64})
    with pytest.raises(LockDriftError, match="wheel evil-9.9-py3-none-any.whl: not in the lock"):
        check_wheel_pins(again, {**wheels, "evil-9.9-py3-none-any.whl": "1" * 64})
    with pytest.raises(LockDriftError, match=f"wheel {name}: in the lock file but no longer resolved"):
        check_wheel_pins(again, {k: v for k, v in wheels.items() if k != name})
