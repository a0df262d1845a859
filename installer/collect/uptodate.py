"""Make-like up-to-date check for `medai bundle build`: a no-change rerun of the same command answers from a stamp.

Runs in `medai`'s entry point before typer, httpx or pydantic are imported (they are most of a no-change
rebuild's time), so this module imports the standard library only; the registry client is imported lazily, and
only when tags must be re-resolved.

After a successful full build, ``record`` writes a stamp keyed by the argument vector after ``bundle build``
(``--json`` left out: it changes the printing only), the working directory and the non-secret MEDAI_*
environment variables. It lives in the user cache (``$MEDAI_CACHE/build-stamps``, else
``$XDG_CACHE_HOME/medai/build-stamps``), never in the bundle. It holds:

- inputs: the manifest, the lock and the signing key (size, mtime_ns and sha256), local chart directories and
  local model directories (every file's path, size and mtime_ns), local source files, the helm binary, medai's
  version, the Python running it and a stat digest of the installer/ source tree;
- outputs: index.json's and index.json.sig's sha256, every file the index lists with its size and mtime_ns
  (nothing else may be in the bundle), and the lock as written;
- upstream: every image reference given by tag with the digest it resolved to (and the registry mirrors used).
  With or without ``--locked``: the full build asks the registry for each tag either way (``--locked`` to refuse
  a moved tag with LockDriftError), so the check does too.

``check`` stats all of that (no file of the bundle is hashed: ``medai bundle verify`` is what re-hashes) and
asks the registry for each tag's digest (HEAD); any difference, any doubt, an unreachable
registry, means "not up to date" and the full build runs. Builds the check cannot vouch for get no
stamp: ``--sigstore``, ``--base``, the tools (``--with-tools``: the full build re-resolves the wheelhouse on
PyPI), OS packages (the archive's index is fetched every build), Hugging Face models (the hub is asked every
build), images with an upstream signature ``key`` (fetched and verified every build).
"""
from __future__ import annotations

import hashlib
import json
import os
import stat
import sys
import time

from installer.core.hashing import sha256_file
from installer.core.resources import cache_dir
from installer.core.sizes import human

STAMP_VERSION = 1
# An input changed this close to (or after) the build's start is not trusted: the file system's clock is coarse.
RACY_NS = 50_000_000
_SECRET_WORDS = ("PASSWORD", "PASSWD", "PASS", "TOKEN", "SECRET", "KEY", "CRED", "AUTH")
_FLAGS = {"--locked": ("locked", True), "--sigstore": ("sigstore", True), "--with-tools": ("tools", True),
          "--no-tools": ("tools", False), "--json": ("json", True)}
_VALUES = {"--out": "out", "--lock": "lock", "--sign-key": "sign_key", "--platform": "platform", "--mirror": "mirror",
           "--base": "base"}
_REPEATABLE = {"platform", "mirror"}

# set by the entry point when it parsed `bundle build ARGS`: the build command then records a stamp
ARGV: list[str] | None = None


# ------------------------------------------------------------------------------------------------ arguments


def parse_args(args: list[str]) -> dict | None:
    """The options of `bundle build ARGS` as the CLI reads them, or None for anything not understood here
    (help, an unknown option, `--`, a missing value): the full CLI then handles it."""
    opts: dict = {"manifest": None, "out": None, "lock": None, "sign_key": None, "base": None, "platform": [],
                  "mirror": [], "locked": False, "sigstore": False, "tools": True, "json": False}
    i = 0
    while i < len(args):
        a = args[i]
        if a.startswith("-"):
            name, eq, value = a.partition("=")
            if name in _FLAGS and not eq:
                key, val = _FLAGS[name]
                opts[key] = val
            elif name in _VALUES:
                if not eq:
                    i += 1
                    if i >= len(args):
                        return None
                    value = args[i]
                key = _VALUES[name]
                if key in _REPEATABLE:
                    opts[key].append(value)
                else:
                    opts[key] = value
            else:
                return None
        elif opts["manifest"] is None:
            opts["manifest"] = a
        else:
            return None
        i += 1
    if opts["manifest"] is None or opts["out"] is None:
        return None
    return opts


def build_key(args: list[str]) -> dict:
    env = {k: v for k, v in sorted(os.environ.items())
           if k.startswith("MEDAI_") and not any(w in k.upper() for w in _SECRET_WORDS)}
    return {"argv": [a for a in args if a != "--json"], "cwd": os.getcwd(), "env": env}


def resolved_paths(opts: dict) -> dict:
    """Where the manifest, the lock, the key and the bundle are now (a retargeted symlink is another build)."""
    manifest = os.path.realpath(opts["manifest"])
    if opts["lock"]:
        lock = os.path.realpath(opts["lock"])
    else:  # installer.bundle.lock.default_lock_path, without importing it
        stem = os.path.basename(manifest)
        for suffix in (".yaml", ".yml"):
            if stem.endswith(suffix):
                stem = stem[: -len(suffix)]
                break
        lock = os.path.join(os.path.dirname(manifest), stem + ".lock.yaml")
    return {"manifest": manifest, "lock": lock, "out": os.path.realpath(opts["out"]),
            "sign_key": os.path.realpath(opts["sign_key"]) if opts["sign_key"] else None}


def stamp_path(args: list[str]) -> str:
    digest = hashlib.sha256(json.dumps(build_key(args), sort_keys=True).encode()).hexdigest()
    return os.path.join(cache_dir(), "build-stamps", f"{digest[:32]}.json")


# ------------------------------------------------------------------------------------------------ facts


def file_fact(path: str, with_sha: bool = False) -> list:
    st = os.stat(path)
    return [path, st.st_size, st.st_mtime_ns, sha256_file(path) if with_sha else None]


def tree_digest(root: str, followlinks: bool = False) -> str:
    """sha256 over every file's relative path, size and mtime_ns under root (stat only, nothing read)."""
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=followlinks):
        dirnames.sort()
        for name in sorted(filenames):
            p = os.path.join(dirpath, name)
            st = os.stat(p)
            h.update(f"{os.path.relpath(p, root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def code_facts() -> dict:
    """What makes this medai this medai: its version, the interpreter, and its source tree's stat digest."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(package):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for name in sorted(filenames):
            if name.endswith((".pyc", ".pyo")):
                continue
            st = os.stat(os.path.join(dirpath, name))
            h.update(f"{os.path.relpath(os.path.join(dirpath, name), package)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return {"medai": installed_version(), "python": sys.version, "executable": sys.executable, "tree": h.hexdigest()}


def installed_version() -> list:
    """medai's installed distribution (name-version.dist-info and its METADATA's stat), found on sys.path without
    importlib.metadata (~70 ms of imports); [] when it runs from a source tree that is not installed."""
    out = []
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for name in sorted(names):
            if name.startswith("medai-") and name.endswith(".dist-info"):
                meta = os.path.join(entry or ".", name, "METADATA")
                st = os.stat(meta) if os.path.isfile(meta) else None
                out.append([name, st.st_size if st else None, st.st_mtime_ns if st else None])
    return out


def helm_path() -> str | None:
    import shutil

    found = shutil.which("helm")
    if found:
        return os.path.abspath(found)
    from installer.core.resources import local_tool

    local = local_tool("helm")
    return str(local) if local.is_file() else None


def _bundle_files(root: str) -> set[str]:
    out: set[str] = set()
    stack = [root]
    while stack:
        d = stack.pop()
        with os.scandir(d) as it:
            for e in it:
                if e.is_dir(follow_symlinks=False):
                    stack.append(e.path)
                else:
                    out.add(os.path.relpath(e.path, root).replace(os.sep, "/"))
    return out


# ------------------------------------------------------------------------------------------------ check


def check(args: list[str]) -> dict | None:
    """The stamp's summary when the build ``bundle build ARGS`` would change nothing, else None."""
    opts = parse_args(args)
    if opts is None:
        return None
    try:
        with open(stamp_path(args), "rb") as f:
            stamp = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(stamp, dict) or stamp.get("version") != STAMP_VERSION or stamp.get("key") != build_key(args):
        return None
    if stamp["paths"] != resolved_paths(opts):
        return None
    # inputs: stat first (cheap), then the small files' sha256
    for path, size, mtime, sha in stamp["inputs"]:
        st = os.stat(path)
        if (st.st_size, st.st_mtime_ns) != (size, mtime) or (sha is not None and sha256_file(path) != sha):
            return None
    for path, digest, followlinks in stamp["trees"]:
        if not os.path.isdir(path) or tree_digest(path, followlinks) != digest:
            return None
    if stamp["helm"] != (file_fact(stamp["helm"][0]) if stamp["helm"] and helm_path() == stamp["helm"][0] else None):
        return None
    if stamp["code"] != code_facts():
        return None
    # outputs: the index and its signature by sha256, every listed file by size and mtime, nothing else there
    root = stamp["bundle"]
    for name, sha in stamp["signatures"].items():
        if sha256_file(os.path.join(root, name)) != sha:
            return None
    files = stamp["files"]
    if _bundle_files(root) != set(files) | set(stamp["signatures"]):
        return None
    for rel, (size, mtime) in files.items():
        st = os.lstat(os.path.join(root, rel))
        if not stat.S_ISREG(st.st_mode) or (st.st_size, st.st_mtime_ns) != (size, mtime):
            return None
    # upstream: tags are resolved again, as the full build does (with --locked, to refuse a moved tag)
    if stamp["tags"] and not _tags_unmoved(stamp["tags"], stamp["mirrors"]):
        return None
    return stamp


def _tags_unmoved(tags: dict[str, str], mirrors: dict[str, str]) -> bool:
    if "httpx" not in sys.modules:
        # httpx imports its own command line (click, rich, pygments: ~0.1 s) unless that fails; medai never runs it
        sys.modules["httpx._main"] = None  # type: ignore[assignment]
        try:
            import httpx  # noqa: F401
        finally:
            del sys.modules["httpx._main"]
    from installer.oci.refs import parse_ref
    from installer.oci.registry import RegistryClient

    client = RegistryClient(retries=1)
    try:
        reader = client
        if mirrors:
            from installer.oci.mirrors import MirroredClient
            reader = MirroredClient(client, mirrors)
        return all(reader.head_manifest(parse_ref(ref)) == digest for ref, digest in tags.items())
    finally:
        client.close()


def report(stamp: dict, as_json: bool, started: float) -> str:
    """The summary of an up-to-date build, worded as the full build's (installer/cli/bundle.py)."""
    s = dict(stamp["summary"])
    s.update(fetched_bytes=0, reused_bytes=s["total_bytes"], seconds=round(time.monotonic() - started, 3),
             upToDate=True, upToDateSince=stamp["built"])
    if as_json:
        return json.dumps(s, indent=1, sort_keys=True) + "\n"
    parts = ", ".join(f"{n} {k}{'s' if n != 1 else ''}" for k, n in s["counts"].items())
    lines = [f"bundle up to date: {s['bundle']}",
             f"  {s['name']} {s['version']}: {parts}; {human(s['total_bytes'])} in all",
             f"  up to date: nothing changed since {stamp['built']}; fetched 0 B, reused {human(s['reused_bytes'])}, "
             f"{s['seconds']:.1f} s",
             f"  index sha256 {s['index_sha256']}; {'signed' if s['signed'] else 'NOT signed (no --sign-key)'}; lock {s['lock']}"]
    lines += [f"  note: {n}" for n in s["notes"]]
    return "\n".join(lines) + "\n"


def try_up_to_date(args: list[str]) -> bool:
    """The entry point's fast path: print the summary and return True when `bundle build ARGS` is up to date.
    Remembers ARGS (when understood) so the full build records a stamp."""
    global ARGV
    started = time.monotonic()
    opts = parse_args(args)
    if opts is None:
        return False
    ARGV = list(args)
    try:
        stamp = check(args)
    except Exception:  # any doubt (a file gone, an unreadable stamp, a registry error): the full build decides
        return False
    if stamp is None:
        return False
    sys.stdout.write(report(stamp, opts["json"], started))
    sys.stdout.flush()
    return True


# ------------------------------------------------------------------------------------------------ record


def not_stampable(opts: dict, spec) -> str | None:
    """Why the check cannot vouch for this build (it then always runs in full), or None."""
    if opts["sigstore"]:
        return "--sigstore"
    if opts["base"]:
        return "--base"
    if opts["tools"]:
        return "the tools (the wheelhouse is resolved on PyPI each build)"
    if spec.osPackages:
        return "OS packages"
    if any(m.source.startswith("hf://") for m in spec.models):
        return "Hugging Face models"
    if any(im.key for im in spec.images):
        return "upstream image signatures"
    return None


def record(args: list[str], started_ns: int, summary: dict) -> str | None:
    """After a successful full build of `bundle build ARGS` (started at wall time started_ns): write its stamp.
    Returns the stamp's path, or None when this build gets none (and any earlier stamp of ARGS is removed)."""
    path = stamp_path(args)
    try:
        os.unlink(path)
    except OSError:
        pass
    opts = parse_args(args)
    if opts is None:
        return None
    doc = _stamp(opts, args, started_ns, summary)
    if doc is None:
        return None
    from installer.core.atomic import atomic_write_bytes

    os.makedirs(os.path.dirname(path), exist_ok=True)
    atomic_write_bytes(path, json.dumps(doc, sort_keys=True).encode())
    return path


def _stamp(opts: dict, args: list[str], started_ns: int, summary: dict) -> dict | None:
    from pathlib import Path

    from installer.bundle.layout import BundleLayout
    from installer.bundle.lock import Lock, default_lock_path
    from installer.bundle.manifest import load_manifest
    from installer.collect.files import local_path
    from installer.oci.mirrors import parse_mirror_option

    paths = resolved_paths(opts)
    manifest_path = Path(opts["manifest"]).resolve()
    spec = load_manifest(manifest_path).spec
    if not_stampable(opts, spec):
        return None
    layout = BundleLayout.at(opts["out"])
    root = str(layout.root.resolve())
    index = layout.read_index()
    lock_path = Path(opts["lock"]) if opts["lock"] else default_lock_path(manifest_path)
    if (str(manifest_path), str(lock_path.resolve()), root) != (paths["manifest"], paths["lock"], paths["out"]):
        return None
    base = manifest_path.parent
    inputs = [file_fact(paths["manifest"], True), file_fact(paths["lock"], True)]
    if inputs[0][3] != index.get("manifestSha256") or inputs[1][3] != sha256_file(str(layout.lock)):
        return None  # the manifest or the lock changed while the build ran
    if paths["sign_key"]:
        inputs.append(file_fact(paths["sign_key"], True))
    # local sources as the build names them (not resolved): a retargeted symlink shows as other files
    trees = []
    for c in spec.charts:
        if c.path is not None:
            trees.append([str(base / c.path), None, False])
    for m in spec.models:
        src = local_path(m.source, base)
        if src is not None:
            trees.append([str(src), None, True])
    for f in spec.files:
        src = local_path(f.url, base)
        if src is not None and src.is_file():
            inputs.append(file_fact(str(src)))
    for t in trees:
        t[1] = tree_digest(t[0], t[2])
    helm = helm_path()
    helm_fact = file_fact(helm) if helm else None
    newest = max([i[2] for i in inputs[2:]] + [helm_fact[2] if helm_fact else 0] + [inputs[0][2]] +
                 [_newest(t[0], t[2]) for t in trees])
    if newest >= started_ns - RACY_NS:
        return None  # an input changed while (or just before) the build ran: the next build decides
    signatures = {"index.json": sha256_file(str(layout.index))}
    if layout.index_sig.is_file():
        signatures["index.json.sig"] = sha256_file(str(layout.index_sig))
    if signatures["index.json"] != summary["index_sha256"]:
        return None
    files = {}
    for entry in index["files"]:
        st = os.lstat(os.path.join(root, entry["path"]))
        if not stat.S_ISREG(st.st_mode) or st.st_size != entry["size"]:
            return None
        files[entry["path"]] = [st.st_size, st.st_mtime_ns]
    mirrors = {**spec.mirrors, **dict(parse_mirror_option(m) for m in opts["mirror"])}
    tags = {ref: d for ref, d in Lock.load(lock_path).images.items() if "@" not in ref}
    return {"version": STAMP_VERSION, "key": build_key(args), "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "paths": paths, "inputs": inputs, "trees": trees, "helm": helm_fact, "code": code_facts(), "bundle": root,
            "signatures": signatures, "files": files, "tags": tags, "mirrors": mirrors, "summary": summary}


def _newest(root: str, followlinks: bool) -> int:
    newest = 0
    for dirpath, _dirs, filenames in os.walk(root, followlinks=followlinks):
        for name in filenames:
            newest = max(newest, os.stat(os.path.join(dirpath, name)).st_mtime_ns)
    return newest
