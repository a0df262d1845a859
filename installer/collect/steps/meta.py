"""The manifest as given and the lock as resolved, inside the bundle (rewritten only when they changed)."""
from __future__ import annotations

from installer.bundle.artifacts import Artifact
from installer.collect.context import BuildContext
from installer.core.atomic import atomic_write_bytes
from installer.core.hashing import sha256_bytes


def run(ctx: BuildContext) -> list[Artifact]:
    layout = ctx.layout
    ctx.manifest_bytes = ctx.manifest_path.read_bytes()
    if not (layout.manifest.is_file() and not layout.manifest.is_symlink()
            and layout.manifest.read_bytes() == ctx.manifest_bytes):
        atomic_write_bytes(layout.manifest, ctx.manifest_bytes)
    ctx.new_lock.write(layout.lock)
    out = []
    for p, kind in ((layout.manifest, "manifest"), (layout.lock, "lock")):
        sha = sha256_bytes(p.read_bytes())
        ctx.known[layout.rel(p)] = sha
        out.append(Artifact("meta", kind, layout.rel(p), p.stat().st_size, sha))
    return out
