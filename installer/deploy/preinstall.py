"""Everything `medai install` checks on the control host before any host is contacted."""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Callable

from installer.bundle.layout import BundleLayout
from installer.deploy.inventory import Inventory
from installer.errors import BundleError, TrustError


def bundle_path(inv: Inventory, bundle: Path | None) -> Path:
    chosen = bundle or (Path(inv.site.medai_bundle_dir) if inv.site.medai_bundle_dir else None)
    if chosen is None:
        raise BundleError(f"{inv.path}: no bundle: pass --bundle DIR or set all.vars.medai_bundle_dir")
    layout = BundleLayout.at(chosen)
    layout.read_index()  # one-line errors for a missing directory or index
    return layout.root


def _trust_verifier() -> Callable | None:
    try:
        mod = importlib.import_module("installer.trust.verify")
    except ModuleNotFoundError as e:
        if e.name != "installer.trust.verify":
            raise
        return None
    return getattr(mod, "verify_bundle", None)


def verify_bundle(bundle: Path, key: Path | None) -> str:
    """Refuse a tampered bundle, and an unsigned one when a key is given. Returns what was checked."""
    if key is not None:
        if not key.is_file():
            raise TrustError(f"{key}: public key not found")
        if not BundleLayout.at(bundle).index_sig.is_file():
            raise TrustError(f"{bundle}: bundle is unsigned (no index.json.sig) but --key was given: refused")
    verifier = _trust_verifier()
    if verifier is not None:
        # the bundle may sit on a read-only USB stick: no report is written into it
        res = verifier(bundle, key=key, write_report=False)
        problems = list(getattr(res, "problems", None) or [])
        if problems:
            shown = "; ".join(str(p) for p in problems[:10])
            more = f" (+{len(problems) - 10} more)" if len(problems) > 10 else ""
            raise BundleError(f"{bundle}: bundle refused: {shown}{more}")
        if getattr(res, "ok", True) is False:
            raise BundleError(f"{bundle}: bundle refused by signature verification")
        return "files and signature" if key else "files"
    if key is not None:
        raise TrustError(f"{key}: signature verification is not available in this build (installer.trust.verify missing)")
    from installer.bundle.verify import verify_files

    res = verify_files(bundle)
    if res.problems:
        shown = "; ".join(str(p) for p in res.problems[:10])
        more = f" (+{len(res.problems) - 10} more)" if len(res.problems) > 10 else ""
        raise BundleError(f"{bundle}: bundle refused: {shown}{more}")
    return "files (no key given: signature not checked)"
