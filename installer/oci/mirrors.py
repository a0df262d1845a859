"""Build-time registry mirrors: fetch each registry's images through a proxy registry (Nexus, Artifactory, a
Harbor) while the bundle keeps the upstream names.

    spec.mirrors: {quay.io: nexus.example/quay, docker.io: nexus.example/dockerhub}
    medai bundle build ... --mirror quay.io=nexus.example/quay

``quay.io/cilium/cilium:v1.18.0`` is then fetched as ``nexus.example/quay/cilium/cilium:v1.18.0`` and stored as
``quay.io/cilium/cilium:v1.18.0``. A digest-pinned reference must resolve to exactly that digest through the mirror:
the registry client checks every manifest it is served against the digest asked for, and the refusal names both
the upstream reference and the mirror.
"""
from __future__ import annotations

import re
from typing import Any

from installer.core.errors import ManifestError, RegistryError
from installer.oci.refs import DOCKER_HUB, ImageRef, parse_ref

_TARGET = re.compile(r"^(?P<host>[a-zA-Z0-9.-]+(?::[0-9]+)?|\[[0-9a-fA-F:]+\](?::[0-9]+)?)(?P<prefix>(?:/[a-z0-9._-]+)*)$")


def check_mirrors(mirrors: dict[str, str], where: str = "spec.mirrors") -> dict[str, str]:
    for upstream, target in mirrors.items():
        problem = mirror_problem(upstream, target)
        if problem:
            raise ManifestError(f"{where}.{upstream}: {problem}", field=f"{where}.{upstream}")
    return {_canonical(up): target.rstrip("/") for up, target in mirrors.items()}


def mirror_problem(upstream: str, target: str) -> str | None:
    """What is wrong with one REGISTRY -> HOST[:PORT][/PATH] entry, or None."""
    if not re.match(r"^[a-zA-Z0-9.-]+(:[0-9]+)?$", _canonical(upstream)):
        return f"{upstream!r} is not a registry host"
    if not _TARGET.match(target.rstrip("/")):
        return f"{target!r} is not HOST[:PORT][/PATH]"
    return None


def _canonical(upstream: str) -> str:
    return DOCKER_HUB if upstream in ("index.docker.io", "registry-1.docker.io") else upstream


def parse_mirror_option(text: str) -> tuple[str, str]:
    """--mirror REGISTRY=HOST[/PATH]"""
    upstream, sep, target = text.partition("=")
    if not sep:
        raise ManifestError(f"--mirror {text!r}: write REGISTRY=MIRROR, e.g. quay.io=nexus.example/quay")
    return next(iter(check_mirrors({upstream.strip(): target.strip()}, "--mirror").items()))


class MirroredClient:
    """A RegistryClient that reads upstream references through their mirrors; writes go where they are named."""

    def __init__(self, inner: Any, mirrors: dict[str, str]):
        self._inner = inner
        self._mirrors = check_mirrors(mirrors)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def via(self, ref: ImageRef) -> ImageRef:
        target = self._mirrors.get(ref.registry)
        if target is None:
            return ref
        host, _, prefix = target.partition("/")
        repo = f"{prefix}/{ref.repository}" if prefix else ref.repository
        return ImageRef(host, repo, ref.tag, ref.digest)

    def _call(self, method: str, ref: ImageRef, *args, **kw):
        mirrored = self.via(ref)
        try:
            return getattr(self._inner, method)(mirrored, *args, **kw)
        except RegistryError as e:
            if mirrored is ref:
                raise
            raise RegistryError(f"{ref.name} through mirror {mirrored.name}: {e}") from None

    def get_manifest(self, ref: ImageRef, reference: str | None = None):
        return self._call("get_manifest", ref, reference)

    def head_manifest(self, ref: ImageRef, reference: str | None = None):
        return self._call("head_manifest", ref, reference)

    def fetch_blob(self, ref: ImageRef, digest: str, *args, **kw):
        return self._call("fetch_blob", ref, digest, *args, **kw)


def mirrored_name(ref: str, mirrors: dict[str, str]) -> str:
    """Where a reference is fetched from (for messages and tests)."""
    return MirroredClient(None, mirrors).via(parse_ref(ref)).name
