"""A minimal real bundle for deploy tests: a few file artifacts written with installer.bundle.index.write_index.

Helper B's `medai bundle build` makes full bundles; the deploy tests need only what stage and k3s consume.
No K3s binary is included (none can be downloaded here), so K3s is configured but not started.
"""
from __future__ import annotations

from pathlib import Path

from installer.bundle.index import Artifact, write_index
from installer.bundle.layout import BundleLayout
from installer.hashing import sha256_file

FILES = {
    # name: (content, groups)
    "site-ca.pem": (b"-----BEGIN CERTIFICATE-----\nmedai test site CA (not a real certificate)\n-----END CERTIFICATE-----\n", ["all"]),
    "gpu-notes.txt": (b"only GPU agents receive this file\n", ["gpu"]),
    "k3s-airgap-images-amd64.tar": (b"placeholder archive: placement and checksum are tested, K3s never imports it\n", ["all"]),
}


def make_bundle(root: Path) -> Path:
    layout = BundleLayout.at(root)
    (layout.root / "files").mkdir(parents=True, exist_ok=True)
    artifacts, known = [], {}
    for name, (content, groups) in FILES.items():
        rel = f"files/{name}"
        (layout.root / rel).write_bytes(content)
        sha = sha256_file(layout.root / rel)
        known[rel] = sha
        artifacts.append(Artifact(kind="file", name=name, path=rel, size=len(content), sha256=sha, neededBy=groups))
    write_index(layout, {"name": "deploy-test", "version": "0.0.1", "created": "2026-01-01T00:00:00Z",
                         "manifestSha256": "0" * 64, "platforms": ["linux/amd64"]}, artifacts, known)
    return layout.root
