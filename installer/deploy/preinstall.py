"""Everything `medai install` checks on the control host before any host is contacted."""
from __future__ import annotations

from pathlib import Path

from installer.bundle.layout import BundleLayout
from installer.core.errors import BundleError
from installer.deploy.inventory import Inventory
from installer.media.manifest import is_media, volume_root


def bundle_path(inv: Inventory, bundle: Path | None) -> Path:
    chosen = bundle or (Path(inv.site.medai_bundle_dir) if inv.site.medai_bundle_dir else None)
    if chosen is None:
        raise BundleError(f"{inv.path}: no bundle: pass --bundle DIR or set all.vars.medai_bundle_dir")

    if is_media(chosen):  # USB media written by `bundle export`: read in place by the working copy
        return volume_root(chosen)
    layout = BundleLayout.at(chosen)
    layout.require_index()  # one-line errors for a missing directory or index; nothing unsigned is parsed here
    return layout.root
