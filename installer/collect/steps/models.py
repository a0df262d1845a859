"""Models: every file with its sha256 (checked against the LFS sha256 where the hub gives one)."""
from __future__ import annotations

from installer.bundle.artifacts import Artifact
from installer.collect.context import BuildContext
from installer.collect.models import fetch_model
from installer.core.hashing import sha256_bytes


def run(ctx: BuildContext) -> list[Artifact]:
    out = []
    for m in ctx.spec.models:
        mres = fetch_model(m, ctx.layout.models, ctx.layout.tmp, ctx.progress, ctx.base_dir,
                           ctx.old_lock.models.get(m.name), enforce_lock=ctx.opts.locked)
        files = {mf.path: mf.sha256 for mf in mres.files}
        ctx.new_lock.models[m.name] = {"source": m.source, "revision": mres.revision, "files": files}
        paths = [ctx.produced((mres.dir / mf.path).resolve(), mf.sha256) for mf in mres.files]
        out.append(Artifact("model", m.name, f"models/{m.name}", mres.size, model_sha256(files), ref=m.source,
                            paths=sorted(paths), meta={"revision": mres.revision, "files": files}))
    return out


def model_sha256(files: dict[str, str]) -> str:
    """One digest for a whole model: sha256 over its sorted 'sha256  path' lines (sha256sum's format)."""
    return sha256_bytes("".join(f"{sha}  {path}\n" for path, sha in sorted(files.items())).encode())
