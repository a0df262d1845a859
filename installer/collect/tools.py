"""The installer travels with the bundle: everything `medai install` needs on a control host that has python3 only.

Public API (called by installer/collect/build.py):

    stage_tools(layout, *, python_version="3.11", platforms=DEFAULT_PLATFORMS, repo_root=REPO,
                helm=None, collections=None, cache_dir=None, log=None) -> dict[str, str]
        writes the pieces below and returns {bundle-relative path: sha256} for index.json.
    tools_artifacts(files) -> list[Artifact]   kind "tool" entries (wheelhouse, collections, helm, ansible, bootstrap)

    BUNDLE/bootstrap.py                 python3 BUNDLE/bootstrap.py ARGS...  ->  medai ARGS... (offline venv)
    BUNDLE/tools/wheelhouse/*.whl       medai's own wheel + every dependency, for the target Python and platform,
                                        + pip itself (so no ensurepip/python3-venv is needed on the host)
    BUNDLE/tools/collections/ansible_collections/NS/NAME/
                                        the Ansible collections the roles and playbooks use (found by scanning
                                        them for FQCNs), copied from the installed `ansible` package
    BUNDLE/tools/helm                   the helm binary
    BUNDLE/tools/ansible/{playbooks,roles}/
                                        the playbooks and roles (molecule scenarios left out). Chosen over package
                                        data in the wheel because they live at the repository root, outside the
                                        `installer` package, and an operator can read them on the stick.

The bootstrap exports, before it runs medai: MEDAI_ANSIBLE_DIR (tools/ansible), ANSIBLE_COLLECTIONS_PATH
(tools/collections), MEDAI_HELM (tools/helm) and PATH with tools/ first. The venv lives in
${MEDAI_HOME:-/var/lib/medai}/venv and is reused while it matches its own record (docs/trust.md).

The wheelhouse is resolved with `pip download --only-binary=:all:` for the target (python_version, platforms);
a dependency published only as an sdist is built into a wheel here and must come out pure-Python
(py3-none-any), otherwise the build stops naming it.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from importlib import resources
from pathlib import Path

from installer.bundle.artifacts import Artifact
from installer.bundle.layout import BundleLayout
from installer.core.atomic import atomic_write_text
from installer.core.childenv import child_env
from installer.core.errors import SourceError
from installer.core.hashing import sha256_file
from installer.core.resources import SOURCE_ROOT

Log = Callable[[str], None]
REPO = SOURCE_ROOT
# glibc-based targets of medai: Debian 12 (2.36), Ubuntu 22.04 (2.35) / 24.04, RHEL/Rocky 9 (2.34).
# pip takes these tags literally, so every manylinux level up to the oldest target's glibc is listed.
DEFAULT_PLATFORMS = ("manylinux2014_x86_64",) + tuple(f"manylinux_2_{m}_x86_64" for m in range(17, 35))
WHEEL_SOURCE = ("pyproject.toml", "README.md", "installer")  # what the medai wheel is built from
ANSIBLE_SKIP = {"molecule", "__pycache__", ".pytest_cache"}
# the `ansible` package holds collections under ansible_collections; these namespaces are ansible-core itself
_CORE_COLLECTIONS = {"ansible.builtin", "ansible.legacy"}
# FQCN uses: a task's module key, a filter, a lookup/query, a `collections:` list item, a role/module name string
_FQCN_PATTERNS = [
    re.compile(r"^\s*(?:-\s+)?([a-z][a-z0-9_]*)\.([a-z][a-z0-9_]*)\.[a-z][a-z0-9_]*:", re.M),
    re.compile(r"\|\s*([a-z][a-z0-9_]*)\.([a-z][a-z0-9_]*)\.[a-z][a-z0-9_]*"),
    re.compile(r"(?:lookup|query)\(\s*['\"]([a-z][a-z0-9_]*)\.([a-z][a-z0-9_]*)\.[a-z][a-z0-9_]*"),
    re.compile(r"^\s*(?:collections|- name):\s*['\"]?([a-z][a-z0-9_]*)\.([a-z][a-z0-9_]*)['\"]?\s*$", re.M),
]


def stage_tools(layout: BundleLayout, *, python_version: str = "3.11", platforms: Iterable[str] = DEFAULT_PLATFORMS,
                repo_root: Path = REPO, helm: str | Path | None = None, collections: Iterable[str] | None = None,
                cache_dir: Path | None = None, log: Log | None = None) -> dict[str, str]:
    """Write tools/ and bootstrap.py into the bundle. Returns {bundle-relative path: sha256}.

    ``collections``: extra collections (NS.NAME) on top of those found in roles/ and playbooks/.
    ``cache_dir``: keeps the resolved dependency wheels between builds, keyed by pyproject.toml, the target
    Python and platforms (medai's own wheel is rebuilt every time).
    """
    log = log or (lambda _m: None)
    repo_root = Path(repo_root)
    tools = layout.tools
    layout.tmp.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix="tools-", dir=layout.tmp))
    stage.chmod(0o755)
    try:
        build_wheelhouse(stage / "wheelhouse", repo_root, python_version, tuple(platforms), cache_dir, log)
        used = collections_used([repo_root / "roles", repo_root / "playbooks"]) | set(collections or ())
        copy_collections(stage / "collections", used, log)
        _copy_helm(stage / "helm", helm or shutil.which("helm") or repo_root / ".tools" / "bin" / "helm")
        copy_ansible_content(stage / "ansible", repo_root)
        if tools.exists():
            shutil.rmtree(tools)
        os.replace(stage, tools)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    boot = layout.root / "bootstrap.py"
    wheels = {p.name: sha256_file(p) for p in sorted((tools / "wheelhouse").iterdir())}
    atomic_write_text(boot, bootstrap_source(python_version, wheels), mode=0o755)
    files = {layout.rel(p): sha256_file(p) for p in sorted(tools.rglob("*")) if p.is_file() and not p.is_symlink()}
    files["bootstrap.py"] = sha256_file(boot)
    log(f"tools: {sum(1 for f in files if f.startswith('tools/wheelhouse/'))} wheels, collections {sorted(used)}")
    return files


def tools_artifacts(files: dict[str, str]) -> list[Artifact]:
    """Index entries (kind "tool") for what stage_tools wrote, one per part."""
    parts = {"wheelhouse": "tools/wheelhouse/", "collections": "tools/collections/", "ansible": "tools/ansible/",
             "helm": "tools/helm", "bootstrap": "bootstrap.py"}
    out = []
    for name, prefix in parts.items():
        paths = sorted(p for p in files if p == prefix or p.startswith(prefix))
        if not paths:
            continue
        # a multi-file part is pinned by the hash of its sorted "sha256  path" lines
        digest = files[paths[0]] if len(paths) == 1 else hashlib.sha256(
            "".join(f"{files[p]}  {p}\n" for p in paths).encode()).hexdigest()
        out.append(Artifact(kind="tool", name=name, path=prefix.rstrip("/"), size=0, sha256=digest, paths=paths))
    return out


# ---------------------------------------------------------------- wheelhouse


PIP_ENV = ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_CONFIG_FILE", "PIP_CACHE_DIR", "PIP_CERT",
           "PIP_NO_INDEX")


def pip_env() -> dict[str, str]:
    """pip (and the build code of any sdist it builds) sees an allow-listed environment: no key password."""
    return child_env(allow=PIP_ENV, network=True)


def _pip(args: list[str], what: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    res = subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", *args], cwd=cwd,
                         capture_output=True, text=True, env=pip_env())
    if res.returncode != 0:
        lines = [ln.strip() for ln in (res.stderr or res.stdout).splitlines() if ln.strip().startswith("ERROR")]
        raise SourceError(f"tools/wheelhouse: {what}: {' | '.join(lines[-2:]) or f'pip exited {res.returncode}'}")
    return res


def _cache_key(repo_root: Path, python_version: str, platforms: tuple[str, ...]) -> str:
    h = hashlib.sha256((repo_root / "pyproject.toml").read_bytes())
    h.update(f"{python_version}|{','.join(platforms)}".encode())
    return h.hexdigest()[:16]


def build_medai_wheel(repo_root: Path, out: Path) -> Path:
    """medai's wheel from a clean copy of its sources (no build/ or egg-info left in the working tree)."""
    with tempfile.TemporaryDirectory(prefix="medai-src-") as t:
        src = Path(t) / "src"
        src.mkdir()
        for name in WHEEL_SOURCE:
            p = repo_root / name
            if p.is_dir():
                shutil.copytree(p, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            elif p.is_file():
                shutil.copy2(p, src / name)
        out.mkdir(parents=True, exist_ok=True)
        _pip(["wheel", "--no-deps", "-q", "-w", str(out), str(src)], "building the medai wheel")
    wheels = sorted(out.glob("medai-*.whl"))
    if not wheels:
        raise SourceError("tools/wheelhouse: building the medai wheel produced no medai-*.whl")
    return wheels[-1]


def _target_args(python_version: str, platforms: tuple[str, ...]) -> list[str]:
    nodot = python_version.replace(".", "")
    args = ["--only-binary=:all:", "--python-version", python_version, "--implementation", "cp", "--abi", f"cp{nodot}",
            "--abi", "abi3", "--abi", "none"]
    for p in platforms:
        args += ["--platform", p]
    return args


def build_wheelhouse(dest: Path, repo_root: Path, python_version: str, platforms: tuple[str, ...],
                     cache_dir: Path | None, log: Log) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="medai-wheel-") as t:
        medai = build_medai_wheel(repo_root, Path(t))
        deps = Path(cache_dir) / _cache_key(repo_root, python_version, platforms) if cache_dir else Path(t) / "deps"
        done = deps / ".complete"
        if not done.is_file():
            log(f"tools: resolving medai's dependencies for cp{python_version} {platforms[0]}...")
            deps.mkdir(parents=True, exist_ok=True)
            _download_deps(medai, deps, python_version, platforms)
            done.write_text("")
        else:
            log(f"tools: dependency wheels from cache {deps}")
        for w in sorted(deps.glob("*.whl")):
            if not w.name.startswith("medai-"):
                shutil.copy2(w, dest / w.name)
        shutil.copy2(medai, dest / medai.name)


def _download_deps(medai: Path, deps: Path, python_version: str, platforms: tuple[str, ...]) -> None:
    target = _target_args(python_version, platforms)
    for _ in range(20):  # one round per sdist-only dependency
        res = subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", "download", "-q", "-d",
                              str(deps), "--find-links", str(deps), *target, str(medai), "pip"],
                             capture_output=True, text=True, env=pip_env())
        if res.returncode == 0:
            (deps / medai.name).unlink(missing_ok=True)
            return
        m = re.search(r"No matching distribution found for ([A-Za-z0-9_.\-\[\]]+(?:[<>=!~]=?[^\s;]+)?)", res.stderr)
        if not m:
            err = [ln for ln in res.stderr.splitlines() if ln.startswith("ERROR")]
            raise SourceError(f"tools/wheelhouse: pip download failed: {' | '.join(err[-2:]) or res.stderr.strip()[-300:]}")
        _build_pure_wheel(m.group(1), deps)
    raise SourceError("tools/wheelhouse: too many dependencies without wheels")


def _build_pure_wheel(requirement: str, deps: Path) -> None:
    """An sdist-only dependency: build it here; usable on the target only if the result is pure Python."""
    before = set(deps.glob("*.whl"))
    _pip(["wheel", "--no-deps", "-q", "-w", str(deps), requirement], f"{requirement} has no wheel and did not build")
    for w in set(deps.glob("*.whl")) - before:
        if not w.name.endswith("-none-any.whl"):
            w.unlink()
            raise SourceError(f"tools/wheelhouse: {requirement} has no wheel for the target and builds only "
                              f"for this host ({w.name}): pin a version with wheels")


# ---------------------------------------------------------------- collections, helm, playbooks


def collections_used(dirs: Iterable[Path]) -> set[str]:
    """NS.NAME of every non-core collection the playbooks and the roles' tasks/handlers under ``dirs`` refer to.

    defaults/, vars/ and meta/ are not scanned (dotted keys such as sysctl names look like FQCNs there), nor are
    molecule scenarios (they run on the connected side only)."""
    used: set[str] = set()
    for d in dirs:
        if not d.is_dir():
            continue
        for p in sorted(d.rglob("*.y*ml")):
            parts = set(p.relative_to(d).parts[:-1])
            if ANSIBLE_SKIP & parts or parts & {"defaults", "vars", "meta", "group_vars", "host_vars"}:
                continue
            text = p.read_text(errors="replace")
            for pat in _FQCN_PATTERNS:
                for ns, name in pat.findall(text):
                    fq = f"{ns}.{name}"
                    if fq not in _CORE_COLLECTIONS and not ns.startswith("medai"):
                        used.add(fq)
    return used


def installed_collections_root() -> Path:
    try:
        import ansible_collections
    except ImportError:
        raise SourceError("tools/collections: the `ansible` package (ansible_collections) is not installed") from None
    for base in ansible_collections.__path__:
        if (Path(base) / "ansible" / "posix").is_dir() or (Path(base) / "community").is_dir():
            return Path(base)
    return Path(list(ansible_collections.__path__)[0])


def copy_collections(dest: Path, wanted: set[str], log: Log) -> None:
    root = installed_collections_root()
    todo, done = sorted(wanted), set()
    while todo:
        fq = todo.pop()
        if fq in done:
            continue
        ns, name = fq.split(".", 1)
        src = root / ns / name
        if not (src / "MANIFEST.json").is_file():
            raise SourceError(f"tools/collections: {fq} is used by the roles/playbooks but not installed under {root}")
        shutil.copytree(src, dest / "ansible_collections" / ns / name, symlinks=False,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "tests"))
        done.add(fq)
        import json

        deps = json.loads((src / "MANIFEST.json").read_text()).get("collection_info", {}).get("dependencies") or {}
        todo.extend(d for d in deps if d not in done)
    log(f"tools: collections {sorted(done)}")


def _copy_helm(dest: Path, helm: str | Path) -> None:
    src = Path(helm)
    if not src.is_file():
        raise SourceError(f"tools/helm: helm binary not found at {src} (put helm on PATH or run .ci/setup-host.sh)")
    shutil.copyfile(src, dest)
    dest.chmod(0o755)


def copy_ansible_content(dest: Path, repo_root: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("playbooks", "roles"):
        src = repo_root / name
        if src.is_dir():
            shutil.copytree(src, dest / name, symlinks=False,
                            ignore=shutil.ignore_patterns(*ANSIBLE_SKIP, "*.pyc"))


# ---------------------------------------------------------------- bootstrap.py


def bootstrap_source(python_version: str, wheels: dict[str, str] | None = None) -> str:
    """The text of BUNDLE/bootstrap.py (kept as a package resource so it is a real, lintable script), carrying
    the sha256 of every wheel it installs: its own sha256 (the bootstrap fingerprint) then pins them all."""
    text = resources.files("installer.collect").joinpath("bootstrap_template.py").read_text()
    text = text.replace('TARGET_PYTHON = "3.11"', f'TARGET_PYTHON = "{python_version}"', 1)
    for name, sha in (wheels or {}).items():
        if not re.fullmatch(r"[A-Za-z0-9_.+-]+\.whl", name) or not re.fullmatch(r"[0-9a-f]{64}", sha):
            raise SourceError(f"tools/wheelhouse/{name}: not a wheel file name with a sha256; refusing to pin it")
    pinned = "{\n" + "".join(f"    {name!r}: {sha!r},\n" for name, sha in sorted((wheels or {}).items())) + "}"
    return text.replace("WHEELS = {}  # file name -> sha256: filled in by `medai bundle build`", f"WHEELS = {pinned}", 1)


BOOTSTRAP_FINGERPRINT_SUFFIX = ".bootstrap.sha256"


def write_bootstrap_fingerprint(bootstrap: Path, public_key: Path) -> tuple[str, Path]:
    """PREFIX.bootstrap.sha256 beside PREFIX.pub, in `sha256sum -c` format: the second thing (after the public
    key) the site receives out of band. Returns (sha256, path)."""
    sha = sha256_file(bootstrap)
    stem = public_key.name.removesuffix(".pub")
    out = public_key.with_name(stem + BOOTSTRAP_FINGERPRINT_SUFFIX)
    atomic_write_text(out, f"{sha}  bootstrap.py\n")
    return sha, out
