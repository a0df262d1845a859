"""Post-install checks on a live cluster: every platform workload Ready, and every running container's image
digest (pod status imageID) one the signed bundle carries. The result goes into the run record and the evidence
report as one line: "N pods, all images from bundle SHA256".

The decision (:func:`check_pods`) is a pure function of the PodList JSON, tested from recorded responses; the
live call runs in the K3s end-to-end test and on sites.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from installer.core.errors import InstallError
from installer.core.hashing import sha256_file
from installer.oci.layout import OCILayout
from installer.platform.apply import owned_by, pod_not_ready

_INDEX_TYPES = ("application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json")


@dataclass
class PostCheck:
    pods: int = 0
    not_ready: list[str] = field(default_factory=list)  # "ns/pod: why"
    foreign: list[str] = field(default_factory=list)  # "ns/pod container: image (imageID)"

    @property
    def ok(self) -> bool:
        return not self.not_ready and not self.foreign

    def line(self, bundle_sha256: str) -> str:
        if self.ok:
            return f"{self.pods} pods, all images from bundle {bundle_sha256}"
        parts = []
        if self.not_ready:
            parts.append(f"{len(self.not_ready)} not ready ({self.not_ready[0]})")
        if self.foreign:
            parts.append(f"{len(self.foreign)} container(s) run an image the bundle does not carry ({self.foreign[0]})")
        return f"{self.pods} pods: " + "; ".join(parts)


def bundle_digests(bundle: str | Path) -> set[str]:
    """Every manifest digest the bundle's OCI layout holds: tops (an index or a manifest) and, under an index,
    each platform manifest (a kubelet reports whichever digest it pulled by)."""

    oci = OCILayout(Path(bundle) / "oci")
    out: set[str] = set()
    for entry in oci.refs().values():
        out.add(entry.digest)
        if entry.media_type in _INDEX_TYPES:
            doc, _ = oci.read_manifest(entry.digest)
            out.update(m["digest"] for m in doc.get("manifests", []) if isinstance(m, dict) and "digest" in m)
    return out


def _digest_of(image_id: str) -> str | None:
    # containerd: "docker.io/longhornio/longhorn-manager@sha256:..."; some runtimes: "sha256:..." (config, not usable)
    if "@sha256:" in image_id:
        return image_id.rsplit("@", 1)[1]
    return None


def check_pods(pods: list[dict], carried: set[str]) -> PostCheck:
    """pods: items of PodLists of the platform namespaces, as the API returns them."""

    out = PostCheck(pods=len(pods))
    for p in pods:
        meta = p.get("metadata") or {}
        where = f"{meta.get('namespace')}/{meta.get('name')}"
        why = pod_not_ready(p)
        if why:
            out.not_ready.append(f"{where}: {why}")
        st = p.get("status") or {}
        for c in (st.get("initContainerStatuses") or []) + (st.get("containerStatuses") or []):
            image_id = c.get("imageID") or ""
            if not image_id:
                continue  # never started: reported as not ready above
            digest = _digest_of(image_id)
            if digest is None or digest not in carried:
                out.foreign.append(f"{where} {c.get('name')}: {c.get('image')} ({image_id})")
    return out


def platform_pods(pods_by_ns: dict[str, list[dict]], releases_by_ns: dict[str, list[str]]) -> list[dict]:
    """Every pod of a namespace the platform owns; in kube-system (K3s's own CoreDNS, metrics-server, local-path,
    from K3s's airgap images) only the pods of the releases installed there."""

    out = []
    for ns, pods in pods_by_ns.items():
        if ns == "kube-system":
            pods = [p for p in pods if any(owned_by(p, r) for r in releases_by_ns.get(ns, []))]
        out.extend(pods)
    return out


def post_install_check(kube, releases_by_ns: dict[str, list[str]], bundle: Path, record=None) -> PostCheck:
    """Live: read the pods of the platform namespaces; fail naming the first problem; record the result."""
    pods = platform_pods({ns: kube.pods(ns) for ns in releases_by_ns}, releases_by_ns)
    result = check_pods(pods, bundle_digests(bundle))
    sha = _index_sha256(bundle)
    if record is not None:
        record.data["postcheck"] = {"line": result.line(sha), "pods": result.pods, "not_ready": result.not_ready,
                                    "foreign": result.foreign}
        record.save()
    if not result.ok:
        raise InstallError(f"post-install check: {result.line(sha)}")
    return result


def _index_sha256(bundle: Path) -> str:
    return sha256_file(Path(bundle) / "index.json")


def load_pod_list(path: Path) -> list[dict]:
    return json.loads(Path(path).read_text())["items"]
