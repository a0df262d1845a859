"""Signing a bundle at build time: every image digest (cosign simple signing, stored in the bundle's OCI layout
under cosign's ``<repo>:sha256-<hex>.sig`` name) and index.json (a detached signature, as ``cosign sign-blob``
writes it). The private key is only ever in memory; nothing derived from it but signatures enters the bundle.

Order in a build: collect images -> ``sign_build`` -> write index.json -> ``sign_index``.
"""
from __future__ import annotations

import base64
import os
from collections.abc import Iterable
from pathlib import Path

from installer.bundle.layout import BundleLayout
from installer.core.atomic import atomic_write_bytes
from installer.core.errors import TrustError
from installer.oci.cosign_tags import signature_tag
from installer.oci.layout import OCILayout
from installer.oci.media_types import OCI_MANIFEST
from installer.oci.refs import parse_ref
from installer.trust.cosign import SignatureLayer, build_signature_image, make_payload, parse_signature_manifest, sign_layer
from installer.trust.keys import SigningKey, load_private_key, verify_signature


def resolve_key(key: SigningKey | str | os.PathLike) -> SigningKey:
    """A SigningKey as is, or a PREFIX.key path unlocked with MEDAI_KEY_PASSWORD / a prompt."""
    return key if isinstance(key, SigningKey) else load_private_key(key)


def _oci(layout: BundleLayout | OCILayout | str | os.PathLike) -> OCILayout:
    if isinstance(layout, OCILayout):
        return layout
    if isinstance(layout, BundleLayout):
        return OCILayout(layout.oci, layout.tmp)
    root = BundleLayout.at(layout)
    return OCILayout(root.oci, root.tmp)


def _image_pairs(images: Iterable) -> list[tuple[str, str]]:
    """(ref, digest) from Artifacts / dicts with ref+digest, or tuples."""
    out = []
    for im in images:
        if isinstance(im, tuple):
            ref, digest = im
        elif isinstance(im, dict):
            ref, digest = im.get("ref") or im.get("name"), im.get("digest")
        else:
            ref, digest = getattr(im, "ref", "") or getattr(im, "name", ""), getattr(im, "digest", None)
        if not ref or not digest:
            raise TrustError(f"image {ref or '?'}: no manifest digest to sign")
        out.append((ref, digest))
    return out


def signature_ref_name(ref: str, digest: str) -> str:
    """The OCI layout reference name of an image's signature manifest: ``<registry/repo>:sha256-<hex>.sig``."""
    return f"{parse_ref(ref).repo_name}:{signature_tag(digest)}"


def existing_layers(oci: OCILayout, name: str) -> list[SignatureLayer]:
    entry = oci.refs().get(name)
    if entry is None:
        return []
    return parse_signature_manifest(oci.read_blob(entry.digest), oci.read_blob, f"{oci.path}: {name}")


def store_signature(oci: OCILayout, ref: str, digest: str, layers: list[SignatureLayer]) -> str:
    """Write a ``.sig`` manifest with ``layers`` for image ``digest``; returns its reference name."""
    name = signature_ref_name(ref, digest)
    image = build_signature_image(layers)
    for blob in image.blobs():
        oci.write_blob(blob)
    oci.write_blob(image.manifest)
    oci.set_ref(name, image.digest, OCI_MANIFEST, len(image.manifest))
    return name


def sign_image(oci: OCILayout, ref: str, digest: str, key: SigningKey, keep: list[SignatureLayer] | None = None) -> str:
    """Sign one image digest. Layers already there (e.g. the upstream's) are kept, except earlier signatures by
    this same key, which are replaced, so a rebuild does not pile up signatures."""
    keep = list(keep or []) + existing_layers(oci, signature_ref_name(ref, digest))
    kept: list[SignatureLayer] = []
    # A signature of ours over the very payload we would sign now (a no-change rebuild) verifies as a new one
    # would: it is kept, so the signature manifest, its blobs and index.json stay byte for byte as they are.
    expected = make_payload(parse_ref(ref).repo_name, digest)
    mine: SignatureLayer | None = None
    for layer in keep:
        try:
            ours = verify_signature(key.public, base64.b64decode(layer.signature_b64), layer.payload)
        except ValueError:
            ours = False
        if ours and mine is None and layer.payload == expected:
            mine = layer
        elif not ours and all((layer.payload, layer.signature_b64) != (k.payload, k.signature_b64) for k in kept):
            kept.append(layer)
    return store_signature(oci, ref, digest, kept + [mine or sign_layer(key, parse_ref(ref).repo_name, digest)])


def sign_build(layout: BundleLayout | OCILayout | str | os.PathLike, images: Iterable, key: SigningKey | str | os.PathLike,
               upstream: dict[str, list[SignatureLayer]] | None = None) -> list[Path]:
    """Sign every image digest; returns the blob paths written (signature manifests, configs, payloads).

    ``images``: Artifacts (kind image, with ref and digest), dicts or (ref, digest) tuples; each distinct digest
    is signed once per repository. ``upstream``: digest -> verified upstream signature layers to carry along.
    Call before index.json is written, so the signatures are listed and hashed in it.
    """
    oci = _oci(layout)
    key = resolve_key(key)
    written: list[Path] = []
    seen: set[tuple[str, str]] = set()
    for ref, digest in _image_pairs(images):
        name = signature_ref_name(ref, digest)
        if (name, digest) in seen:
            continue
        seen.add((name, digest))
        sign_image(oci, ref, digest, key, (upstream or {}).get(digest))
        entry = oci.refs()[name]
        doc, _ = oci.read_manifest(entry.digest)
        written.append(oci.blob_path(entry.digest))
        written += [oci.blob_path(d["digest"]) for d in [doc["config"], *doc["layers"]]]
    return written


def sign_index(layout: BundleLayout | str | os.PathLike, index_bytes: bytes, key: SigningKey | str | os.PathLike) -> Path:
    """Write BUNDLE/index.json.sig: base64 of the DER ECDSA-SHA256 signature over the exact bytes of index.json,
    the format ``cosign sign-blob`` prints and ``cosign verify-blob --signature`` reads."""
    bl = layout if isinstance(layout, BundleLayout) else BundleLayout.at(layout)
    on_disk = bl.index.read_bytes() if bl.index.is_file() else None
    if on_disk is not None and on_disk != index_bytes:
        raise TrustError(f"{bl.index}: differs from the bytes given to sign (index rewritten after it was generated?)")
    key = resolve_key(key)
    sig = base64.b64encode(key.sign(index_bytes))
    atomic_write_bytes(bl.index_sig, sig)
    return bl.index_sig
