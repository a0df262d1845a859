"""cosign "simple signing" image signatures: made, stored and checked exactly as cosign 2.x does.

For an image manifest digest D in repository REPO, cosign stores under the tag ``sha256-<hex of D>.sig`` an OCI
image manifest whose layers are signature payloads:

    layer mediaType  application/vnd.dev.cosign.simplesigning.v1+json
    layer blob       {"critical":{"identity":{"docker-reference":REPO},"image":{"docker-manifest-digest":D},
                      "type":"cosign container image signature"},"optional":null}
    annotation       dev.cosignproject.cosign/signature = base64(ECDSA-SHA256 DER signature over the blob bytes)

A payload is only evidence for the image its ``docker-manifest-digest`` names: a signature manifest copied onto
another image's tag verifies cryptographically but names the wrong digest, and is refused here.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric import ec

from installer.core.errors import RegistryError, TrustError
from installer.core.hashing import digest_hex
from installer.oci.cosign_tags import signature_tag
from installer.oci.media_types import OCI_CONFIG, OCI_MANIFEST
from installer.oci.refs import parse_ref
from installer.trust.keys import SigningKey, load_public_key, verify_signature

SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
PAYLOAD_TYPE = "cosign container image signature"


def _go_json(doc) -> bytes:
    # Go's encoding/json: compact, fields in struct order, '<', '>' and '&' escaped as \u003c etc.
    text = json.dumps(doc, separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026").encode()


def make_payload(repository: str, digest: str) -> bytes:
    digest_hex(digest)
    return _go_json({
        "critical": {
            "identity": {"docker-reference": repository},
            "image": {"docker-manifest-digest": digest},
            "type": PAYLOAD_TYPE,
        },
        "optional": None,
    })


def _descriptor(media_type: str, data: bytes, annotations: dict | None = None) -> dict:
    d = {"mediaType": media_type, "size": len(data), "digest": "sha256:" + hashlib.sha256(data).hexdigest()}
    if annotations:
        d["annotations"] = annotations
    return d


@dataclass
class SignatureLayer:
    payload: bytes
    signature_b64: str
    annotations: dict = field(default_factory=dict)

    @property
    def descriptor(self) -> dict:
        return _descriptor(SIMPLESIGNING, self.payload, {**self.annotations, SIGNATURE_ANNOTATION: self.signature_b64})


@dataclass
class SignatureImage:
    """The blobs of one ``.sig`` manifest: write config, every payload, then the manifest."""

    manifest: bytes
    config: bytes
    layers: list[SignatureLayer]

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.manifest).hexdigest()

    def blobs(self) -> list[bytes]:
        return [self.config, *(layer.payload for layer in self.layers)]


def sign_layer(key: SigningKey, repository: str, digest: str) -> SignatureLayer:
    payload = make_payload(repository, digest)
    return SignatureLayer(payload, base64.b64encode(key.sign(payload)).decode())


def build_signature_image(layers: list[SignatureLayer]) -> SignatureImage:
    """The manifest cosign pushes: an OCI image whose config lists the payloads as diff_ids (as cosign writes it)."""
    descs = [layer.descriptor for layer in layers]
    config = _go_json({
        "architecture": "",
        "created": "0001-01-01T00:00:00Z",
        "history": [{"created": "0001-01-01T00:00:00Z"} for _ in layers],
        "os": "",
        "rootfs": {"type": "layers", "diff_ids": [d["digest"] for d in descs]},
        "config": {},
    })
    manifest = _go_json({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": _descriptor(OCI_CONFIG, config),
        "layers": descs,
    })
    return SignatureImage(manifest, config, list(layers))


def parse_signature_manifest(manifest: bytes, read_blob: Callable[[str], bytes], where: str) -> list[SignatureLayer]:
    """The simple-signing layers of a ``.sig`` manifest; ``read_blob(digest)`` must check what it returns."""
    try:
        doc = json.loads(manifest)
        layers = doc["layers"]
    except (ValueError, KeyError, TypeError):
        raise TrustError(f"{where}: not an OCI image manifest") from None
    out: list[SignatureLayer] = []
    for i, desc in enumerate(layers):
        if desc.get("mediaType") != SIMPLESIGNING:
            continue
        ann = dict(desc.get("annotations") or {})
        sig = ann.pop(SIGNATURE_ANNOTATION, None)
        if not sig:
            raise TrustError(f"{where}: layer {i} has no {SIGNATURE_ANNOTATION} annotation")
        payload = read_blob(desc["digest"])
        if "sha256:" + hashlib.sha256(payload).hexdigest() != desc["digest"]:
            raise TrustError(f"{where}: layer {i} payload does not match its digest {desc['digest']}")
        out.append(SignatureLayer(payload, sig, ann))
    return out


@dataclass
class SignatureCheck:
    """The outcome for one image: ok only if a layer verifies with the key AND names this image's digest."""

    image: str
    digest: str
    ok: bool
    detail: str
    signed_reference: str = ""


def payload_digest(payload: bytes) -> tuple[str, str]:
    """(docker-manifest-digest, docker-reference) of a simple-signing payload."""
    try:
        crit = json.loads(payload)["critical"]
        if crit.get("type") != PAYLOAD_TYPE:
            raise ValueError(crit.get("type"))
        return crit["image"]["docker-manifest-digest"], crit.get("identity", {}).get("docker-reference", "")
    except (ValueError, KeyError, TypeError, AttributeError):
        return "", ""


def check_layers(layers: list[SignatureLayer], image: str, digest: str, pub: ec.EllipticCurvePublicKey) -> SignatureCheck:
    if not layers:
        return SignatureCheck(image, digest, False, "signature manifest has no simple-signing layers")
    wrong: list[str] = []
    for layer in layers:
        try:
            sig = base64.b64decode(layer.signature_b64, validate=True)
        except (ValueError, binascii.Error):
            continue
        if not verify_signature(pub, sig, layer.payload):
            continue
        signed, reference = payload_digest(layer.payload)
        if signed == digest:
            return SignatureCheck(image, digest, True, "signature verified", reference)
        wrong.append(signed or "an unreadable payload")
    if wrong:
        return SignatureCheck(image, digest, False, f"signature is valid but signs another image ({', '.join(wrong)}): swapped signature")
    return SignatureCheck(image, digest, False, "no signature verifies with the given public key")


# ---------------------------------------------------------------------------------------------- in a registry

MAX_PAYLOAD = 1024 * 1024


def fetch_registry_layers(client, ref: str, digest: str) -> list[SignatureLayer]:
    """The simple-signing layers stored in a registry for image ``ref`` at ``digest`` (cosign's .sig tag)."""

    image = parse_ref(ref)
    manifest = client.get_manifest(image, signature_tag(digest))

    def read_blob(blob_digest: str) -> bytes:
        buf = bytearray()

        def sink(chunk: bytes) -> None:
            buf.extend(chunk)
            if len(buf) > MAX_PAYLOAD:
                raise TrustError(f"{image.repo_name}: signature payload {blob_digest} larger than {MAX_PAYLOAD} bytes")

        client.fetch_blob(image, blob_digest, sink)
        return bytes(buf)

    return parse_signature_manifest(manifest.data, read_blob, f"{image.repo_name}:{signature_tag(digest)}")


def verify_registry_image(client, ref: str, digest: str, pub: ec.EllipticCurvePublicKey) -> tuple[SignatureCheck, list[SignatureLayer]]:
    """Check the cosign signature of ``ref``@``digest`` in its registry. A missing signature is a failed check."""

    try:
        layers = fetch_registry_layers(client, ref, digest)
    except RegistryError as e:
        return SignatureCheck(ref, digest, False, f"no cosign signature found ({e})"), []
    return check_layers(layers, ref, digest, pub), layers


def verify_upstream(client, ref: str, digest: str, key_path) -> list[SignatureLayer]:
    """Build-time gate for an image entry with ``key``: the upstream cosign signature must verify, or TrustError.

    Returns the upstream layers so the build can carry them into the bundle next to its own signature."""

    pub = load_public_key(key_path)
    check, layers = verify_registry_image(client, ref, digest, pub)
    if not check.ok:
        raise TrustError(f"image {ref}: upstream signature check with {key_path} failed: {check.detail}")
    return layers
