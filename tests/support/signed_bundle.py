"""Hand-made signed bundles (index.json + index.json.sig over real files) for tests that need no servers."""
from __future__ import annotations

from pathlib import Path

from installer.bundle.artifacts import Artifact
from installer.bundle.index import write_index
from installer.bundle.layout import BundleLayout
from installer.core.hashing import sha256_bytes
from installer.trust.signing import sign_index


def make_signed_bundle(root: Path, key, files: dict[str, bytes], artifacts: list[Artifact] | None = None,
                       header: dict | None = None, manifest: str | None = None, base: Path | None = None) -> BundleLayout:
    """Write ``files``, index them (one file artifact per file unless ``artifacts``), sign with ``key``.
    ``base``: make it differential on that bundle (installer.trust.differential.prune_to_base)."""
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    if manifest is not None:
        (root / "manifest.yaml").write_text(manifest)
    layout = BundleLayout.at(root)
    arts = artifacts if artifacts is not None else [
        Artifact("file", Path(rel).name, rel, len(d), sha256_bytes(d)) for rel, d in files.items()]
    known: dict[str, str] = {}
    head = {"name": "site", "version": "1.0.0", **(header or {})}
    if base is not None:
        from installer.trust.differential import prune_to_base
        head.update(prune_to_base(layout, base / "index.json", known))
    data = write_index(layout, head, arts, known=known)
    sign_index(layout, data, key)
    return layout
