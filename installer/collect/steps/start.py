"""Read the manifest and the lock, unlock the signing key, and take the bundle's 'finished' mark away."""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from pydantic import ValidationError

from installer.bundle.layout import BundleLayout
from installer.bundle.lock import Lock, chart_key, check_file_pin, default_lock_path
from installer.bundle.manifest import Spec, load_manifest
from installer.collect.context import BuildContext, BuildOptions
from installer.core.errors import BundleError, LockDriftError, ManifestError, MedaiError, TrustError
from installer.core.progress import Progress
from installer.trust.signing import resolve_key

# What a rebuild may find in a bundle directory; anything else means --out points at the wrong place.
_BUNDLE_ENTRIES = {"index.json", "index.json.sig", "index.sigstore.json", "manifest.yaml", "lock.yaml", "oci", "charts",
                   "files", "models", "sbom", "os", "tools", "bootstrap.py", "sigstore", "reports", ".tmp",
                   "index.json.tmp"}


def start(opts: BuildOptions) -> BuildContext:
    started = time.monotonic()
    manifest_path = Path(opts.manifest).resolve()
    manifest = load_manifest(manifest_path)
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
        check_lock_preflight(manifest.spec, old_lock)
    signing_key = None
    if opts.sign_key is not None:
        if not Path(opts.sign_key).is_file():
            raise TrustError(f"{opts.sign_key}: signing key not found")
        # Unlock once, before any download: one password prompt, and a wrong password fails at once.
        signing_key = resolve_key(opts.sign_key)

    layout = BundleLayout.at(opts.out)
    previous = _previous_index(layout)  # read before prepare_out removes it: lets a no-change rebuild reuse SBOMs
    prepare_out(layout)
    return BuildContext(opts=opts, progress=opts.progress or Progress(), manifest_path=manifest_path,
                        manifest=manifest, platforms=opts.platforms or manifest.spec.platforms, lock_path=lock_path,
                        old_lock=old_lock, layout=layout, previous=previous, signing_key=signing_key, started=started)


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


def _previous_index(layout: BundleLayout) -> dict | None:
    try:
        return layout.read_index()
    except MedaiError:
        return None
