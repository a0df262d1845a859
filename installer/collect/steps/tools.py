"""The installer travels with the bundle: wheelhouse, collections, helm, playbooks/roles and bootstrap.py."""
from __future__ import annotations

import shutil

from installer.bundle.artifacts import Artifact
from installer.bundle.lock import check_wheel_pins, lock_wheels
from installer.collect.context import BuildContext
from installer.collect.tools import stage_tools, tools_artifacts


def run(ctx: BuildContext) -> list[Artifact]:
    layout = ctx.layout
    if not ctx.opts.with_tools:
        if layout.tools.is_dir():
            shutil.rmtree(layout.tools)
        (layout.root / "bootstrap.py").unlink(missing_ok=True)
        return []

    tool_files: dict[str, str] = stage_tools(layout, log=ctx.progress.note)
    ctx.new_lock.wheels = lock_wheels(tool_files)
    if ctx.opts.locked:
        check_wheel_pins(ctx.old_lock, ctx.new_lock.wheels)
    ctx.known.update(tool_files)
    return tools_artifacts(tool_files)
