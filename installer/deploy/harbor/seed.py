"""Seed Harbor's ``platform`` project from the bundle: verify with the site key, push, check the copies, record it.

Harbor's cosign enforcement (project metadata ``enable_content_trust_cosign``) refuses a pull only when NO cosign
signature is attached; it does not check who signed. So before anything is pushed, every image of the bundle
is verified against the SITE key (the one that came out of band), and after the push every pushed digest is
verified again in Harbor with that key; both results go into the evidence file.

Harbor 2's registry (distribution 2.8) refuses a multi-arch index whose left-out platforms are absent, and the
bundle keeps only the site's platforms: the platform manifest is pushed under the tag instead (the bundle signs
it too). Each image's CycloneDX SBOM from the bundle is attached next to what its tag serves (cosign's
``sha256-<hex>.sbom`` tag). Digest-pinned references to the index stay resolvable through K3s' embedded mirror, which the node's
registries.yaml lists after Harbor.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from installer.core.atomic import atomic_write_text
from installer.core.errors import MedaiError, TrustError
from installer.deploy.push import push_verified
from installer.deploy.working_copy import verified_working_copy
from installer.oci.media_types import OCI_MANIFEST
from installer.oci.refs import parse_ref
from installer.oci.registry import RegistryClient, sha256_digest
from installer.trust.cosign import verify_registry_image
from installer.trust.keys import fingerprint, load_public_key

PLATFORM_PROJECT = "platform"
HARBOR_COSIGN_CAVEAT = ("Harbor's cosign enforcement only checks that some cosign signature exists, not whose: "
                        "the site key was verified by medai before the push and again on the pushed copies")


@dataclass
class SeedResult:
    evidence: Path
    pushed: list[dict] = field(default_factory=list)


def seed_harbor(bundle: str | os.PathLike, harbor: str, key: str | os.PathLike, evidence_dir: str | os.PathLike,
                ca_file: str | os.PathLike | None = None, project: str = PLATFORM_PROJECT) -> SeedResult:
    """Verify ``bundle`` with the site ``key``, push its images to ``harbor``/``project`` (platform manifests
    where the index is refused), verify each pushed digest in Harbor with the key, write harbor-seed.json."""

    evidence_dir = Path(evidence_dir)
    evidence_dir.mkdir(parents=True, exist_ok=True)
    try:
        vb = verified_working_copy(Path(bundle), Path(key))  # the one opener: signature, every file, every image
    except MedaiError as e:
        raise TrustError(f"{bundle}: not pushed to {harbor}: the bundle does not verify with the site key {key} "
                         f"({str(e).splitlines()[0]})") from None
    pub = load_public_key(key)
    host = harbor.removeprefix("https://").split("/", 1)[0]
    results = push_verified(vb, f"{harbor.removeprefix('https://').rstrip('/')}/{project}", ca_file=ca_file,
                            platform_manifest=True)
    pushed: list[dict] = []
    with RegistryClient(https=[host], ca_file=Path(ca_file) if ca_file else None) as client:
        sboms = attach_sboms(client, vb.root, results)
        for r in results:
            sig, _ = verify_registry_image(client, r.dest, r.digest, pub)
            pushed.append({"dest": r.dest, "digest": r.digest, "platformManifest": r.fallback or None,
                           "signatures": r.signatures, "sbom": sboms.get(r.dest),
                           "siteKeyVerifiedInRegistry": sig.ok, "detail": sig.detail})
    doc = {
        "kind": "medai.harbor-seed/v1",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "harbor": harbor, "project": project,
        "siteKey": {"path": str(key), "fingerprint": fingerprint(pub)},
        "bundleVerifiedBeforePush": {"ok": True, **vb.record(), "images": len(vb.index.images())},
        "harborCosignCaveat": HARBOR_COSIGN_CAVEAT,
        "images": pushed,
    }
    out = evidence_dir / "harbor-seed.json"
    atomic_write_text(out, json.dumps(doc, indent=2) + "\n")
    bad = [p["dest"] for p in pushed if not p["siteKeyVerifiedInRegistry"]]
    if bad:
        raise TrustError(f"{harbor}: pushed copies do not verify with the site key: {', '.join(bad)} (see {out})")
    return SeedResult(out, pushed)


CYCLONEDX_JSON = "application/vnd.cyclonedx+json"


def _sbom_subjects(bundle: Path) -> list[tuple[Path, str, str]]:
    """(file, image digest, platform manifest digest) for each SBOM the build generated under sbom/images/."""
    out = []
    for f in sorted((Path(bundle) / "sbom" / "images").glob("*.cdx.json")):
        if ".upstream-" in f.name:
            continue
        props = {p.get("name"): p.get("value") for p in
                 (json.loads(f.read_bytes()).get("metadata", {}).get("component", {}).get("properties") or [])}
        if props.get("medai:image:digest"):
            out.append((f, props["medai:image:digest"], props.get("medai:image:manifest") or props["medai:image:digest"]))
    return out


def attach_sboms(client, bundle: str | os.PathLike, results) -> dict[str, str]:
    """Attach each image's CycloneDX SBOM (from the signed bundle) next to what its tag serves, under cosign's
    ``sha256-<hex>.sbom`` tag (``cosign download sbom`` reads it). Returns {dest: sbom tag}."""
    import tempfile


    attached: dict[str, str] = {}
    subjects = _sbom_subjects(Path(bundle))
    config = b"{}"
    with tempfile.TemporaryDirectory(prefix="medai-sbom-") as tmp:
        cfg_path = Path(tmp) / "config.json"
        cfg_path.write_bytes(config)
        for r in results:
            match = [f for f, top, platform in subjects if r.digest in (platform, top)]
            # a platform manifest standing in for the index: its own SBOM; otherwise the image's (first) one
            match = [f for f, _, platform in subjects if platform == r.digest] or match
            if not match:
                continue
            f = match[0]
            data = f.read_bytes()
            dest = parse_ref(r.dest)
            client.push_blob(dest, sha256_digest(config), len(config), cfg_path)
            client.push_blob(dest, sha256_digest(data), len(data), f)
            manifest = json.dumps({
                "schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256_digest(config),
                           "size": len(config)},
                "layers": [{"mediaType": CYCLONEDX_JSON, "digest": sha256_digest(data), "size": len(data),
                            "annotations": {"org.opencontainers.image.title": f.name}}],
            }, separators=(",", ":")).encode()
            tag = f"sha256-{r.digest.split(':', 1)[1]}.sbom"
            if any(sig.endswith(":" + tag) for sig in r.signatures):
                continue  # an SBOM the upstream attached was carried and pushed already: keep it
            client.put_manifest(dest, tag, manifest, OCI_MANIFEST)
            attached[r.dest] = f"{dest.repo_name}:{tag}"
    return attached
