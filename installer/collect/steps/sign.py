"""Signatures: every image (and each platform manifest of a multi-arch one) with the site key; keyless signing
carries the Sigstore trusted root so it verifies offline behind the gap."""
from __future__ import annotations

import shutil

from installer.bundle.artifacts import Artifact
from installer.collect.context import BuildContext
from installer.core.hashing import sha256_file
from installer.oci.images import present_platform_manifests
from installer.trust.signing import sign_build
from installer.trust.sigstore import carry_trusted_root


def images(ctx: BuildContext) -> list[Artifact]:
    if ctx.opts.sign_key is None or not ctx.images:
        return []
    # The platform manifests of a multi-arch image are signed too: a registry that refuses the reduced index
    # gets the platform manifest under the tag (installer/deploy/push.py), and that digest needs a signature.
    sign_build(ctx.layout, [(im.ref, d) for im in ctx.images for d in (im.digest, *present_platform_manifests(ctx.oci, im.digest))],
               ctx.signing_key, upstream=ctx.upstream or None)
    return []


def sigstore_root(ctx: BuildContext) -> list[Artifact]:
    layout = ctx.layout
    if not ctx.opts.sigstore:
        if (layout.root / "sigstore").is_dir():
            shutil.rmtree(layout.root / "sigstore")
        return []
    root_file = carry_trusted_root(layout.root)
    sha = sha256_file(root_file)
    ctx.known[layout.rel(root_file)] = sha
    return [Artifact("meta", "sigstore-trusted-root", layout.rel(root_file), root_file.stat().st_size, sha)]
