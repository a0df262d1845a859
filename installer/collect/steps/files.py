"""Files (K3s, the SCAP content, …): downloaded with resume and checked against their pinned sha256."""
from __future__ import annotations

from installer.bundle.artifacts import Artifact
from installer.collect.context import BuildContext
from installer.collect.files import fetch_file


def run(ctx: BuildContext) -> list[Artifact]:
    out = []
    for f in ctx.spec.files:
        fres = fetch_file(f, ctx.layout.files, ctx.layout.tmp, ctx.progress, ctx.base_dir)
        ctx.new_lock.files[f.name] = fres.sha256
        rel = ctx.produced(fres.path, fres.sha256)
        out.append(Artifact("file", f.name, rel, fres.size, fres.sha256, ref=f.url,
                            meta={"hosts": list(f.hosts)} | ({"sigstore": f.sigstore.model_dump()} if f.sigstore else {})))
    return out
