"""SBOMs the upstream attached to an image, found in the OCI layout and kept as they came.

Three ways upstreams attach them, all recognised:
  * cosign ``attach sbom``: a manifest tagged ``sha256-<hex>.sbom`` whose layers are the SBOM documents;
  * OCI 1.1 referrers: a manifest whose ``subject`` is the image and whose artifactType/layer is an SBOM,
    or cosign attestations (``sha256-<hex>.att``, or referrers) carrying DSSE in-toto statements;
  * BuildKit attestation manifests inside the image index (``vnd.docker.reference.type``).
Plain SBOM blobs are copied byte for byte; from attestations the SBOM predicate is extracted.
"""
from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path

from installer.core.errors import TrustError
from installer.oci.layout import OCILayout
from installer.oci.media_types import INDEX_TYPES, MANIFEST_TYPES, REF_NAME

SBOM_MEDIA = {
    "application/vnd.cyclonedx+json": "cdx.json",
    "application/vnd.cyclonedx+xml": "cdx.xml",
    "application/vnd.cyclonedx": "cdx.json",
    "application/spdx+json": "spdx.json",
    "text/spdx+json": "spdx.json",
    "text/spdx": "spdx",
    "text/spdx+xml": "spdx.xml",
    "application/vnd.syft+json": "syft.json",
}
DSSE = "application/vnd.dsse.envelope.v1+json"
IN_TOTO = "application/vnd.in-toto+json"
MAX_ATTESTATION = 256 * 1024 * 1024


@dataclass(frozen=True)
class UpstreamSbom:
    source: str  # how it was found, for the file name: "sbom-tag", "referrer", "attestation", "buildkit"
    ext: str
    blob_digest: str
    content: bytes | None = None  # extracted predicate; None: copy the blob itself

    def write(self, oci: OCILayout, dest: Path) -> None:
        if self.content is not None:
            dest.write_bytes(self.content)
            return
        with open(oci.blob_path(self.blob_digest), "rb") as src, open(dest, "wb") as out:
            while chunk := src.read(1 << 20):
                out.write(chunk)


def find(oci: OCILayout, image_digest: str, platform_digests: list[str], what: str) -> list[UpstreamSbom]:
    targets = {image_digest, *platform_digests}
    tag_suffixes = {f"sha256-{d.split(':', 1)[1]}.{kind}": kind for d in targets for kind in ("sbom", "att")}
    found: dict[tuple[str, str], UpstreamSbom] = {}

    def add(items: list[UpstreamSbom]) -> None:
        for item in items:
            found.setdefault((item.blob_digest, item.ext), item)

    for desc in oci.read_index().get("manifests", []):
        digest = desc.get("digest", "")
        if desc.get("mediaType") not in MANIFEST_TYPES or not oci.has_blob(digest):
            continue
        name = (desc.get("annotations") or {}).get(REF_NAME, "")
        kind = next((k for s, k in tag_suffixes.items() if name.endswith(s)), None)
        if kind == "sbom":
            add(_from_manifest(oci, oci.read_json(digest, what), "sbom-tag", what))
            continue
        if kind == "att":
            add(_from_manifest(oci, oci.read_json(digest, what), "attestation", what))
            continue
        manifest = oci.read_json(digest, what)
        if (manifest.get("subject") or {}).get("digest") in targets:
            add(_from_manifest(oci, manifest, "referrer", what))

    top = oci.read_json(image_digest, what)
    if top.get("mediaType") in INDEX_TYPES:
        for desc in top.get("manifests", []):
            ann = desc.get("annotations") or {}
            if ann.get("vnd.docker.reference.type") == "attestation-manifest" and oci.has_blob(desc.get("digest", "")) \
                    and ann.get("vnd.docker.reference.digest") in targets:
                add(_from_manifest(oci, oci.read_json(desc["digest"], what), "buildkit", what))
    return sorted(found.values(), key=lambda u: (u.source, u.blob_digest, u.ext))


def _from_manifest(oci: OCILayout, manifest: dict, source: str, what: str) -> list[UpstreamSbom]:
    out = []
    artifact_type = manifest.get("artifactType") or (manifest.get("config") or {}).get("mediaType", "")
    for layer in manifest.get("layers", []):
        media, digest = layer.get("mediaType", ""), layer.get("digest", "")
        if not oci.has_blob(digest):
            continue
        if media in SBOM_MEDIA:
            out.append(UpstreamSbom(source, SBOM_MEDIA[media], digest))
        elif media in (DSSE, IN_TOTO) or artifact_type in (DSSE, IN_TOTO):
            sbom = _from_statement(oci, digest, dsse=(media == DSSE or artifact_type == DSSE), what=what)
            if sbom:
                out.append(UpstreamSbom(source, sbom[0], digest, sbom[1]))
        elif artifact_type in SBOM_MEDIA:
            out.append(UpstreamSbom(source, SBOM_MEDIA[artifact_type], digest))
    return out


def _from_statement(oci: OCILayout, digest: str, dsse: bool, what: str) -> tuple[str, bytes] | None:
    path = oci.blob_path(digest)
    if path.stat().st_size > MAX_ATTESTATION:
        raise TrustError(f"{what}: attestation {digest} is larger than {MAX_ATTESTATION} bytes")
    try:
        doc = json.loads(path.read_bytes())
        if dsse:
            if doc.get("payloadType") != IN_TOTO:
                return None
            doc = json.loads(base64.b64decode(doc["payload"]))
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        return None  # not an SBOM attestation we can read; the upstream's other documents are still kept
    predicate_type = str(doc.get("predicateType", ""))
    if predicate_type.startswith("https://cyclonedx.org/bom"):
        ext = "cdx.json"
    elif predicate_type.startswith("https://spdx.dev/Document"):
        ext = "spdx.json"
    else:
        return None
    predicate = doc.get("predicate")
    if not isinstance(predicate, dict):
        return None
    return ext, (json.dumps(predicate, indent=1, sort_keys=True, ensure_ascii=False) + "\n").encode()
