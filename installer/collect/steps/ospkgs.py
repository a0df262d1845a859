"""OS packages: the dependency closure from the distribution's archive (and pinned vendor repositories), as
a signed local repository."""
from __future__ import annotations

import shutil

from installer.bundle.artifacts import Artifact
from installer.collect.context import BuildContext
from installer.collect.ospkgs import collect_all_os_packages


def run(ctx: BuildContext) -> list[Artifact]:
    if not ctx.spec.osPackages:
        if ctx.layout.os.is_dir():
            shutil.rmtree(ctx.layout.os)
        return []

    arts, files = collect_all_os_packages(ctx.layout, ctx.spec.osPackages, cache_dir=ctx.opts.os_cache_dir,
                                          log=ctx.progress.note)
    ctx.known.update(files)
    return arts
