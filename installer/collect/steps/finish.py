"""Finish: no partial download left, the differential cut, index.json (the 'finished' mark) and its
signature(s), the lock beside the manifest, the bootstrap fingerprint, everything on the stick synced."""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from installer.bundle.artifacts import Artifact
from installer.bundle.index import write_index
from installer.collect.context import BuildContext, BuildOptions, BuildSummary
from installer.collect.tools import write_bootstrap_fingerprint
from installer.core.errors import BundleError
from installer.core.hashing import sha256_bytes, sha256_file
from installer.trust.differential import prune_to_base
from installer.trust.signing import sign_index
from installer.trust.sigstore import sign_index_keyless


def index(ctx: BuildContext) -> list[Artifact]:
    layout, opts = ctx.layout, ctx.opts
    shutil.rmtree(layout.tmp, ignore_errors=True)  # partial downloads never belong to a finished bundle
    differential: dict = {}
    if opts.base is not None:
        differential = prune_to_base(layout, opts.base, ctx.known)
    try:
        ctx.index_bytes = write_index(layout, {
            "name": ctx.manifest.metadata.name,
            "version": ctx.manifest.metadata.version,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "manifestSha256": sha256_bytes(ctx.manifest_bytes),
            "platforms": list(ctx.platforms),
            "signed": opts.sign_key is not None,
            **differential,
        }, ctx.artifacts, ctx.known)
    except ValueError as e:  # a symlink or special file in the bundle
        raise BundleError(f"{layout.root}: {e}") from None
    try:
        if opts.sign_key is not None:
            sign_index(layout, ctx.index_bytes, ctx.signing_key)
        if opts.sigstore:
            sign_index_keyless(layout.root, ctx.index_bytes)
    except BaseException:
        layout.index.unlink(missing_ok=True)  # a requested signature is part of "finished"
        raise
    return []


def summary(ctx: BuildContext) -> BuildSummary:
    opts = ctx.opts
    if not opts.locked:
        ctx.new_lock.write(ctx.lock_path)
    boot_sha, boot_file = bootstrap_fingerprint(ctx.layout.root, opts)
    os.sync()  # a stick pulled right after the build carries every file, not only the index
    counts: dict[str, int] = {}
    for a in ctx.artifacts:
        counts[a.kind] = counts.get(a.kind, 0) + 1
    index_doc = json.loads(ctx.index_bytes)
    counters = ctx.progress.counters
    return BuildSummary(
        bundle=str(ctx.layout.root), name=ctx.manifest.metadata.name, version=ctx.manifest.metadata.version,
        lock=str(ctx.lock_path), counts=dict(sorted(counts.items())),
        total_bytes=sum(f["size"] for f in index_doc["files"]),
        fetched_bytes=counters.fetched_bytes, reused_bytes=counters.reused_bytes,
        seconds=round(time.monotonic() - ctx.started, 3), index_sha256=sha256_bytes(ctx.index_bytes),
        signed=opts.sign_key is not None, sigstore=opts.sigstore, notes=ctx.notes,
        bootstrap_sha256=boot_sha, bootstrap_fingerprint_file=boot_file,
    )


def bootstrap_fingerprint(root: Path, opts: BuildOptions) -> tuple[str | None, str | None]:
    """sha256 of bootstrap.py, written as PREFIX.bootstrap.sha256 beside the signing key's PREFIX.pub."""
    boot = root / "bootstrap.py"
    if not boot.is_file():
        return None, None

    if opts.sign_key is None:
        return sha256_file(boot), None
    pub = Path(opts.sign_key).with_suffix(".pub")
    sha, out = write_bootstrap_fingerprint(boot, pub)
    return sha, str(out)
