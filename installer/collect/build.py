"""`medai bundle build`: manifest in, finished bundle out, as a pipeline of steps (installer/collect/steps/).

index.json is the "finished" mark, so it is removed first and written last. Anything failing raises a one-line
MedaiError; index.json is then absent, so the half-built directory never passes for a bundle, and a rerun
reuses every checked artifact (blobs, charts, files, model files).
"""
from __future__ import annotations

from installer.collect.context import BuildContext, BuildOptions, BuildSummary
from installer.collect.steps import charts, files, finish, images, meta, models, ospkgs, prune, sboms, sign, start, tools
from installer.core.errors import BundleError

__all__ = ["BuildOptions", "BuildSummary", "build_bundle", "STEPS"]

# In order. Charts are rendered and gated before any other download; chart artifacts follow the images (neededBy
# both ways); the prune runs before anything lists the bundle's content; SBOMs describe the final artifacts.
STEPS = (
    ("charts", charts.fetch),
    ("images", images.collect),
    ("files", files.run),
    ("models", models.run),
    ("chart artifacts", charts.artifacts),
    ("OS packages", ospkgs.run),
    ("tools", tools.run),
    ("manifest and lock", meta.run),
    ("prune", prune.run),
    ("image artifacts", images.artifacts),
    ("SBOMs", sboms.run),
    ("image signatures", sign.images),
    ("Sigstore trusted root", sign.sigstore_root),
    ("index", finish.index),
)


def build_bundle(opts: BuildOptions) -> BuildSummary:
    """Build (or resume, or refresh) the bundle at opts.out. Every failure is a one-line MedaiError."""
    try:
        ctx: BuildContext = start.start(opts)
        for _name, step in STEPS:
            ctx.artifacts += step(ctx)
        return finish.summary(ctx)
    except OSError as e:  # disk full, permissions, a path that vanished: one line naming the file
        where = e.filename or opts.out
        raise BundleError(f"{where}: {e.strerror or e}") from None
