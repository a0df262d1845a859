"""OCI and Docker media types, the layout's reference annotation, and the platform string of a descriptor."""
from __future__ import annotations

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
ACCEPT = ", ".join((OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST))
REF_NAME = "org.opencontainers.image.ref.name"


def platform_string(p: dict | None) -> str:
    """``linux/amd64``, ``linux/arm/v7``; "" when the descriptor or config names no OS."""
    if not p or not p.get("os"):
        return ""
    s = f"{p['os']}/{p.get('architecture', '')}"
    return s + (f"/{p['variant']}" if p.get("variant") else "")


def platform_matches(wanted: str, p: dict | None) -> bool:
    """``linux/arm64`` matches os linux + architecture arm64 (any variant); ``linux/arm/v7`` needs variant v7."""
    if not p:
        return False
    parts = wanted.split("/")
    if len(parts) < 2 or p.get("os") != parts[0] or p.get("architecture") != parts[1]:
        return False
    return len(parts) < 3 or p.get("variant") == parts[2]
