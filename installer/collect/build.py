"""`medai bundle build`: manifest in, finished bundle out.

Order (index.json is the "finished" mark, so it is removed first and written last):
  manifest -> charts (fetch, render, discover images) -> images (listed + discovered + extraImages) -> files
  -> models -> OS packages -> tools/wheelhouse -> lock.yaml + manifest.yaml -> SBOMs -> image signatures
  -> prune what this manifest no longer names -> index.json -> index signature(s) -> lock file beside the manifest.

Anything failing raises a one-line MedaiError; index.json is then absent, so the half-built directory never
passes for a bundle, and a rerun reuses every checked artifact (blobs, charts, files, model files).
"""
from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from installer.bundle.index import Artifact, write_index
from installer.bundle.layout import BundleLayout
from installer.bundle.lock import Lock, chart_key, check_file_pin, default_lock_path
from installer.bundle.manifest import BundleManifest, Spec, load_manifest
from installer.core.progress import Progress
from installer.collect.charts import ChartResult, fetch_chart
from installer.collect.files import FileResult, fetch_file
from installer.collect.models import ModelResult, fetch_model
from installer.core.errors import BundleError, LockDriftError, ManifestError, MedaiError, TrustError
from installer.core.hashing import digest_hex, sha256_bytes, sha256_file
from installer.core.atomic import atomic_write_bytes
from installer.bundle.policy import chart_only_images, check_registries
from installer.render.gate import plan_images
from installer.render.helm import k3s_kube_version, render_chart
from installer.oci.refs import normalize_ref

# What a rebuild may find in a bundle directory; anything else means --out points at the wrong place.
_BUNDLE_ENTRIES = {"index.json", "index.json.sig", "index.sigstore.json", "manifest.yaml", "lock.yaml", "oci", "charts",
                   "files", "models", "sbom", "os", "tools", "bootstrap.py", "sigstore", "reports", ".tmp",
                   "index.json.tmp"}


@dataclass
class BuildOptions:
    manifest: Path
    out: Path
    lock: Path | None = None  # default: <manifest stem>.lock.yaml beside the manifest
    locked: bool = False
    sign_key: Path | None = None
    sigstore: bool = False
    platforms: list[str] | None = None  # overrides spec.platforms
    with_tools: bool = True
    registry_client: Any = None  # an installer.oci.registry.RegistryClient (tests pass their own)
    os_cache_dir: Path | None = None
    progress: Progress | None = None
    mirrors: dict[str, str] = field(default_factory=dict)  # --mirror REGISTRY=HOST[/PATH], over spec.mirrors
    base: Path | None = None  # differential: carry only files the base index (or bundle dir) lacks
    sbom_cache_dir: Path | None = None  # layer facts for SBOMs by digest (default: $MEDAI_CACHE/sbom-layers)


@dataclass
class BuildSummary:
    bundle: str
    name: str
    version: str
    lock: str
    counts: dict[str, int]
    total_bytes: int
    fetched_bytes: int
    reused_bytes: int
    seconds: float
    index_sha256: str
    signed: bool
    sigstore: bool
    notes: list[str] = field(default_factory=list)
    bootstrap_sha256: str | None = None  # the fingerprint the site checks bootstrap.py against, out of band
    bootstrap_fingerprint_file: str | None = None

    def to_json(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


# ------------------------------------------------------------------------------------------------ steps


def prepare_out(layout: BundleLayout) -> None:
    """Create the bundle directory or, for a rebuild, take away its 'finished' mark before anything changes."""
    root = layout.root
    if root.exists() and not root.is_dir():
        raise BundleError(f"{root}: exists and is not a directory")
    if root.is_dir():
        entries = set(os.listdir(root))
        foreign = sorted(entries - _BUNDLE_ENTRIES)
        if entries and (foreign or not entries & {"manifest.yaml", "oci", ".tmp", "index.json", "charts", "files"}):
            raise BundleError(f"{root}: not empty and not a medai bundle (found {', '.join(foreign[:3]) or 'other files'}); "
                              "choose an empty or new --out directory")
    root.mkdir(parents=True, exist_ok=True)
    for p in (layout.index, layout.index_sig, layout.index_sigstore):
        p.unlink(missing_ok=True)
    if layout.reports.is_symlink() or layout.reports.is_file():
        layout.reports.unlink()
    elif layout.reports.is_dir():  # reports of older verifies: they live outside the bundle now
        shutil.rmtree(layout.reports)
    layout.tmp.mkdir(exist_ok=True)


def check_lock_preflight(spec: Spec, lock: Lock) -> None:
    """--locked: the cheap checks first, before anything is fetched."""
    for f in spec.files:
        check_file_pin(lock, f.name, f.sha256)
    for c in spec.charts:
        if chart_key(c.name, c.version) not in lock.charts:
            raise LockDriftError(f"chart {c.name} {c.version}: not in the lock file (rebuild without --locked to add it)")
    for m in spec.models:
        if m.name not in lock.models:
            raise LockDriftError(f"model {m.name}: not in the lock file (rebuild without --locked to add it)")
        if lock.models[m.name].get("source") != m.source:
            raise LockDriftError(f"model {m.name}: source {m.source} differs from the lock's {lock.models[m.name].get('source')}")


def _model_sha256(files: dict[str, str]) -> str:
    """One digest for a whole model: sha256 over its sorted 'sha256  path' lines (sha256sum's format)."""
    return sha256_bytes("".join(f"{sha}  {path}\n" for path, sha in sorted(files.items())).encode())


def _prune_dir(directory: Path, keep: set[Path]) -> None:
    """Remove files under directory that this build did not produce (an entry dropped from the manifest)."""
    if not directory.is_dir():
        return
    for dirpath, _dirs, names in os.walk(directory, topdown=False):
        for n in names:
            p = Path(dirpath) / n
            if p not in keep:
                p.unlink()
        if Path(dirpath) != directory and not os.listdir(dirpath):
            os.rmdir(dirpath)


def prune_oci(oci, image_names: set[str], image_digests: set[str]) -> None:
    """Drop layout references this build did not collect (and their signatures), then unreachable blobs."""
    from installer.oci.cosign_tags import tags_digest
    from installer.oci.images import is_signature_ref

    stale = []
    for name in oci.refs():
        if name in image_names:
            continue
        if is_signature_ref(name) and any(tags_digest(name.rsplit(":", 1)[-1], d) for d in image_digests):
            continue
        stale.append(name)
    if stale:
        oci.remove_refs(stale)
    oci.prune()


def _collect(client, oci, spec: Spec, needed_by: dict[str, list[str]], platforms: list[str], old_lock: Lock,
             locked: bool, base: Path, progress: Progress, layer_facts=None) -> tuple[list, dict[str, list]]:
    """Collect every image into the OCI layout; verify upstream signatures where the manifest names a key."""
    from installer.oci.images import collect_images

    if locked:
        for ref in needed_by:
            if ref not in old_lock.images:
                raise LockDriftError(f"image {ref}: not in the lock file (rebuild without --locked to add it)")
    try:
        with progress.task(f"images ({len(needed_by)})") as advance:
            collected = collect_images(client, oci, list(needed_by), platforms,
                                       old_lock.images if locked else None, advance, layer_facts)
    except MedaiError as e:
        charts = needed_by.get(e.ref or "", [])
        if charts:  # say which chart wanted the image that could not be collected
            raise type(e)(f"{e} (needed by chart {', '.join(charts)})", ref=e.ref) from None
        raise
    upstream: dict[str, list] = {}
    keyed = {normalize_ref(im.ref): im.key for im in spec.images if im.key}
    for im in collected:
        progress.counters.fetched(im.fetched_bytes)
        progress.counters.reused(im.reused_bytes)
        if im.ref in keyed:
            from installer.trust.cosign import verify_upstream
            key_path = Path(keyed[im.ref])
            upstream[im.digest] = verify_upstream(client, im.ref, im.digest,
                                                  key_path if key_path.is_absolute() else base / key_path)
    return collected, upstream


def _previous_index(layout: BundleLayout) -> dict | None:
    try:
        return layout.read_index()
    except MedaiError:
        return None


def _reusable_sboms(layout: BundleLayout, previous: dict | None, artifacts: list[Artifact]) -> dict[str, str] | None:
    """The SBOM files of the previous build when every artifact they describe is unchanged and the files are intact.

    SBOMs are a pure function of the artifacts (images by digest, charts/files/models by sha256), so an unchanged
    set means identical SBOMs; re-cataloguing every layer of every image would dominate a no-change rebuild.
    """
    if not previous:
        return None
    old = [a for a in previous.get("artifacts", []) if a.get("kind") != "sbom"]
    new = [a.to_json() for a in artifacts]
    key = lambda a: (a["kind"], a["name"], a["path"])  # noqa: E731
    if sorted(old, key=key) != sorted(new, key=key):
        return None
    sboms = [a for a in previous.get("artifacts", []) if a.get("kind") == "sbom"]
    if not sboms:
        return None
    out: dict[str, str] = {}
    for a in sboms:
        p = layout.root / a["path"]
        if not p.is_file() or p.is_symlink() or sha256_file(p) != a["sha256"]:
            return None
        out[a["path"]] = a["sha256"]
    on_disk = {layout.rel(p) for p in layout.sbom.rglob("*") if p.is_file()} if layout.sbom.is_dir() else set()
    return out if on_disk == set(out) else None


# ------------------------------------------------------------------------------------------------ the build


def build_bundle(opts: BuildOptions) -> BuildSummary:
    """Build (or resume, or refresh) the bundle at opts.out. Every failure is a one-line MedaiError."""
    try:
        return _build(opts)
    except OSError as e:  # disk full, permissions, a path that vanished: one line naming the file
        where = e.filename or opts.out
        raise BundleError(f"{where}: {e.strerror or e}") from None


def _build(opts: BuildOptions) -> BuildSummary:
    started = time.monotonic()
    progress = opts.progress or Progress()
    manifest_path = Path(opts.manifest).resolve()
    manifest: BundleManifest = load_manifest(manifest_path)
    spec = manifest.spec
    base = manifest_path.parent
    platforms = opts.platforms or spec.platforms
    if opts.platforms:
        try:
            Spec(platforms=opts.platforms)
        except ValidationError as e:
            raise ManifestError(f"--platform: {e.errors()[0]['msg'].removeprefix('Value error, ')}") from None
    lock_path = Path(opts.lock) if opts.lock else default_lock_path(manifest_path)
    if opts.locked and not lock_path.is_file():
        raise LockDriftError(f"{lock_path}: --locked needs the lock file, and there is none")
    old_lock = Lock.load(lock_path)
    if opts.locked:
        check_lock_preflight(spec, old_lock)
    signing_key = None
    if opts.sign_key is not None:
        if not Path(opts.sign_key).is_file():
            raise TrustError(f"{opts.sign_key}: signing key not found")
        # Unlock once, before any download: one password prompt, and a wrong password fails at once.
        from installer.trust.signing import resolve_key
        signing_key = resolve_key(opts.sign_key)

    layout = BundleLayout.at(opts.out)
    previous = _previous_index(layout)  # read before prepare_out removes it: lets a no-change rebuild reuse SBOMs
    prepare_out(layout)
    new_lock = Lock()
    artifacts: list[Artifact] = []
    known: dict[str, str] = {}  # bundle-relative path -> sha256 already computed while writing
    keep: set[Path] = set()
    notes: list[str] = []

    # --- charts: fetch, render at the bundled Kubernetes version, and the image gate (before any other download)
    kube_version = k3s_kube_version(spec)
    rendered: dict[str, list[dict]] = {}
    chart_results: dict[str, ChartResult] = {}
    for c in spec.charts:
        key = chart_key(c.name, c.version)
        res = fetch_chart(c, layout.charts, layout.tmp, old_lock.charts.get(key), enforce_lock=opts.locked,
                          base_dir=Path(opts.manifest).resolve().parent)
        (progress.counters.fetched if res.fetched else progress.counters.reused)(res.size)
        chart_results[c.name] = res
        new_lock.charts[key] = res.lock_sha256
        rendered[c.name] = render_chart(c.name, c.version, res.path, c.values, c.namespace, kube_version, c.releaseName)
        keep.add(res.path)
        known[layout.rel(res.path)] = res.sha256
    needed_by = plan_images(spec, rendered).needed
    check_registries(spec, needed_by)
    for ref, charts in sorted(chart_only_images(spec, needed_by).items()):
        notes.append(f"image {ref} came only from chart discovery ({', '.join(charts)}); it will be signed with the site key")

    # --- images
    images_out: list = []
    upstream: dict[str, list] = {}
    oci = None
    # SBOM facts of each layer, gathered while it downloads (or once from the layout), kept by digest outside the bundle
    from installer.sbom.layer_facts import LayerFactsStore, default_dir
    layer_facts = LayerFactsStore(opts.sbom_cache_dir or default_dir())
    if needed_by:
        from installer.oci.layout import OCILayout
        from installer.oci.registry import RegistryClient

        oci = OCILayout(layout.oci, layout.tmp)
        client = opts.registry_client or RegistryClient()
        mirrors = {**spec.mirrors, **opts.mirrors}
        if mirrors:
            from installer.oci.mirrors import MirroredClient
            client = MirroredClient(client, mirrors)
        try:
            images_out, upstream = _collect(client, oci, spec, needed_by, platforms, old_lock, opts.locked, base, progress,
                                            layer_facts)
        finally:
            if opts.registry_client is None:
                client.close()
        for im in images_out:
            new_lock.images[im.ref] = im.digest
        if upstream and opts.sign_key is None:
            # no signing key: still carry the verified upstream signatures next to the images
            from installer.trust.signing import store_signature

            for im in images_out:
                if im.digest in upstream:
                    store_signature(oci, im.ref, im.digest, upstream[im.digest])

    # --- files
    for f in spec.files:
        fres: FileResult = fetch_file(f, layout.files, layout.tmp, progress, base)
        new_lock.files[f.name] = fres.sha256
        rel = layout.rel(fres.path)
        known[rel] = fres.sha256
        keep.add(fres.path)
        artifacts.append(Artifact("file", f.name, rel, fres.size, fres.sha256, ref=f.url,
                                  meta={"hosts": list(f.hosts)} | ({"sigstore": f.sigstore.model_dump()} if f.sigstore else {})))

    # --- models
    for m in spec.models:
        mres: ModelResult = fetch_model(m, layout.models, layout.tmp, progress, base,
                                        old_lock.models.get(m.name), enforce_lock=opts.locked)
        files = {mf.path: mf.sha256 for mf in mres.files}
        new_lock.models[m.name] = {"source": m.source, "revision": mres.revision, "files": files}
        paths = []
        for mf in mres.files:
            p = mres.dir / mf.path
            rel = layout.rel(p)
            known[rel] = mf.sha256
            keep.add(p.resolve())
            paths.append(rel)
        artifacts.append(Artifact("model", m.name, f"models/{m.name}", mres.size, _model_sha256(files), ref=m.source,
                                  paths=sorted(paths), meta={"revision": mres.revision, "files": files}))

    # --- chart artifacts (after images, so neededBy is known both ways)
    for c in spec.charts:
        cres = chart_results[c.name]
        imgs = sorted(ref for ref, charts in needed_by.items() if c.name in charts)
        artifacts.append(Artifact("chart", c.name, layout.rel(cres.path), cres.size, cres.sha256,
                                  ref=f"{c.repo}/{c.name}:{c.version}",
                                  meta={"version": c.version, "repo": c.repo, "images": imgs,
                                        "namespace": c.namespace, "releaseName": c.releaseName or c.name}))

    # --- OS packages
    if spec.osPackages:
        from installer.collect.ospkgs import collect_all_os_packages as collect_all
        os_arts, os_files = collect_all(layout, spec.osPackages, cache_dir=opts.os_cache_dir, log=progress.note)
        artifacts += os_arts
        known.update(os_files)
    else:
        _clear(layout.os)

    # --- tools / wheelhouse / bootstrap
    if opts.with_tools:
        from installer.collect.tools import stage_tools, tools_artifacts
        tool_files: dict[str, str] = stage_tools(layout, log=progress.note)
        from installer.bundle.lock import check_wheel_pins, lock_wheels
        new_lock.wheels = lock_wheels(tool_files)
        if opts.locked:
            check_wheel_pins(old_lock, new_lock.wheels)
        artifacts += tools_artifacts(tool_files)
        known.update(tool_files)
    else:
        _clear(layout.tools)
        (layout.root / "bootstrap.py").unlink(missing_ok=True)

    # --- the manifest as given and the lock as resolved
    manifest_bytes = manifest_path.read_bytes()
    if not (layout.manifest.is_file() and not layout.manifest.is_symlink() and layout.manifest.read_bytes() == manifest_bytes):
        atomic_write_bytes(layout.manifest, manifest_bytes)
    new_lock.write(layout.lock)
    for p, kind in ((layout.manifest, "manifest"), (layout.lock, "lock")):
        sha = sha256_bytes(p.read_bytes())
        known[layout.rel(p)] = sha
        artifacts.append(Artifact("meta", kind, layout.rel(p), p.stat().st_size, sha))

    # --- prune what the manifest no longer names, before anything that lists the bundle's content
    _prune_dir(layout.charts, keep)
    _prune_dir(layout.files, keep)
    _prune_dir(layout.models, {k.resolve() for k in keep})
    for d in list(layout.models.iterdir()) if layout.models.is_dir() else []:
        if d.name not in {m.name for m in spec.models}:
            shutil.rmtree(d) if d.is_dir() else d.unlink()
    for d in (layout.charts, layout.files, layout.models):
        if d.is_dir() and not any(d.iterdir()):
            d.rmdir()
    if oci is not None:
        from installer.oci.images import present_platform_manifests
        prune_oci(oci, {im.ref for im in images_out},
                  {d for im in images_out for d in (im.digest, *present_platform_manifests(oci, im.digest))})
    elif layout.oci.exists():
        shutil.rmtree(layout.oci)

    # --- image artifacts
    for im in images_out:
        sizes = {d: (oci.blob_path(d).stat().st_size) for d in im.blobs}
        artifacts.append(Artifact("image", im.ref, f"oci/blobs/sha256/{digest_hex(im.digest)}", sum(sizes.values()),
                                  digest_hex(im.digest), ref=im.ref, digest=im.digest,
                                  paths=[f"oci/blobs/sha256/{digest_hex(d)}" for d in im.blobs],
                                  neededBy=needed_by.get(im.ref, []),
                                  meta={"platforms": im.platforms, "mediaType": im.media_type, "source": im.source,
                                        **({"artifact": True} if getattr(im, "artifact", False) else {})}))

    # --- SBOMs (per image + bundle level)
    sbom_files = _reusable_sboms(layout, previous, artifacts)
    if sbom_files is None:
        from installer.sbom import write_sboms

        # OCI artifacts (e.g. Trivy's databases) have no file system to catalog
        sbom_files = write_sboms(layout, [im for im in images_out if not getattr(im, "artifact", False)], list(artifacts),
                                 facts=layer_facts)
    known.update(sbom_files)
    for rel, sha in sorted(sbom_files.items()):
        artifacts.append(Artifact("sbom", rel.removeprefix("sbom/"), rel, (layout.root / rel).stat().st_size, sha))

    # --- image signatures
    if opts.sign_key is not None and images_out:
        from installer.oci.images import present_platform_manifests
        from installer.trust.signing import sign_build
        # The platform manifests of a multi-arch image are signed too: a registry that refuses the reduced index
        # gets the platform manifest under the tag (installer/deploy/push.py), and that digest needs a signature.
        sign_build(layout, [(im.ref, d) for im in images_out for d in (im.digest, *present_platform_manifests(oci, im.digest))],
                   signing_key, upstream=upstream or None)

    # --- keyless signing verifies offline behind the gap against the trusted root carried in the bundle
    if opts.sigstore:
        from installer.trust.sigstore import carry_trusted_root as carry
        root_file = carry(layout.root)
        sha = sha256_file(root_file)
        known[layout.rel(root_file)] = sha
        artifacts.append(Artifact("meta", "sigstore-trusted-root", layout.rel(root_file), root_file.stat().st_size, sha))
    elif (layout.root / "sigstore").is_dir():
        shutil.rmtree(layout.root / "sigstore")

    # --- .tmp must be empty: partial downloads never belong to a finished bundle
    shutil.rmtree(layout.tmp, ignore_errors=True)

    differential: dict = {}
    if opts.base is not None:
        from installer.trust.differential import prune_to_base
        differential = prune_to_base(layout, opts.base, known)

    try:
        index_bytes = write_index(layout, {
            "name": manifest.metadata.name,
            "version": manifest.metadata.version,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "manifestSha256": sha256_bytes(manifest_bytes),
            "platforms": list(platforms),
            "signed": opts.sign_key is not None,
            **differential,
        }, artifacts, known)
    except ValueError as e:  # a symlink or special file in the bundle
        raise BundleError(f"{layout.root}: {e}") from None

    try:
        if opts.sign_key is not None:
            from installer.trust.signing import sign_index
            sign_index(layout, index_bytes, signing_key)
        if opts.sigstore:
            from installer.trust.sigstore import sign_index_keyless as sign_keyless
            sign_keyless(layout.root, index_bytes)
    except BaseException:
        layout.index.unlink(missing_ok=True)  # a requested signature is part of "finished"
        raise

    if not opts.locked:
        new_lock.write(lock_path)
    boot_sha, boot_file = _bootstrap_fingerprint(layout, opts)
    os.sync()  # a stick pulled right after the build carries every file, not only the index

    counts: dict[str, int] = {}
    for a in artifacts:
        counts[a.kind] = counts.get(a.kind, 0) + 1
    index_doc = json.loads(index_bytes)
    return BuildSummary(
        bundle=str(layout.root), name=manifest.metadata.name, version=manifest.metadata.version,
        lock=str(lock_path), counts=dict(sorted(counts.items())),
        total_bytes=sum(f["size"] for f in index_doc["files"]),
        fetched_bytes=progress.counters.fetched_bytes, reused_bytes=progress.counters.reused_bytes,
        seconds=round(time.monotonic() - started, 3), index_sha256=sha256_bytes(index_bytes),
        signed=opts.sign_key is not None, sigstore=opts.sigstore, notes=notes,
        bootstrap_sha256=boot_sha, bootstrap_fingerprint_file=boot_file,
    )


def _bootstrap_fingerprint(layout: BundleLayout, opts: BuildOptions) -> tuple[str | None, str | None]:
    """sha256 of bootstrap.py, written as PREFIX.bootstrap.sha256 beside the signing key's PREFIX.pub."""
    boot = layout.root / "bootstrap.py"
    if not boot.is_file():
        return None, None
    from installer.collect.tools import write_bootstrap_fingerprint

    if opts.sign_key is None:
        return sha256_file(boot), None
    pub = Path(opts.sign_key).with_suffix(".pub")
    sha, out = write_bootstrap_fingerprint(boot, pub)
    return sha, str(out)


def _clear(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
