"""The bundle-level SBOM: every image, chart, file and model of the bundle in one CycloneDX document.

Images are ``container`` components pinned by digest, with ``bom`` references (path + sha256) to their
own SBOMs; charts are ``application`` and files ``file`` components with their sha256; each model is a
``machine-learning-model`` component whose sub-components are its files, each with its sha256.
"""
from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import yaml
from cyclonedx.model import ExternalReference, ExternalReferenceType, XsUri
from cyclonedx.model.component import Component, ComponentType

from installer.bundle.layout import BundleLayout
from installer.core.errors import TrustError
from installer.core.hashing import is_sha256_hex, sha256_file
from installer.sbom import cdx
from installer.sbom.image_sbom import container_component

_FILE_KINDS = {"file": ComponentType.FILE, "tool": ComponentType.FILE, "ospkgs": ComponentType.FILE,
               "chart": ComponentType.APPLICATION}


@dataclass
class ImageEntry:
    ref: str
    digest: str
    sboms: list[tuple[str, str]] = field(default_factory=list)  # (rel path, sha256) of its generated SBOMs


def bundle_bom(layout: BundleLayout, images: list[ImageEntry], artifacts: list, workers: int = 4) -> bytes:
    name, version = _bundle_name(layout)
    components: list[Component] = []
    seed: list = [name, version]
    for img in sorted(images, key=lambda i: (i.ref, i.digest)):
        c = container_component(img.ref, img.digest, "", bom_ref=f"image:{img.ref}@{img.digest}")
        c.properties.update(cdx.props([("medai:image:ref", img.ref)]))
        for rel, sha in img.sboms:
            c.external_references.add(ExternalReference(
                type=ExternalReferenceType.BOM, url=XsUri(rel), hashes=[cdx.sha256_hash(sha)]))
        components.append(c)
        seed.append(["image", img.ref, img.digest, img.sboms])
    for a in sorted(artifacts, key=lambda a: (a.kind, a.name, a.path)):
        if a.kind == "model":
            files = _model_files(layout, a, workers)
            components.append(_model_component(a, files))
            seed.append(["model", a.name, a.ref, files])
        elif a.kind in _FILE_KINDS:
            if not is_sha256_hex(a.sha256):
                raise TrustError(f"{a.kind} {a.name}: artifact has no sha256 for the bundle SBOM")
            components.append(Component(
                type=_FILE_KINDS[a.kind], name=a.name, version=str(a.meta.get("version") or "") or None,
                bom_ref=f"{a.kind}:{a.name}", hashes=[cdx.sha256_hash(a.sha256)],
                properties=cdx.props([("medai:kind", a.kind), ("medai:path", a.path), ("medai:source", a.ref)])))
            seed.append([a.kind, a.name, a.path, a.sha256, a.ref])
        # image artifacts come through ``images``; sbom/meta artifacts describe the bundle itself
    refs = [c.bom_ref.value for c in components]
    if len(set(refs)) != len(refs):
        dup = next(r for r in refs if refs.count(r) > 1)
        raise TrustError(f"bundle SBOM: two artifacts would share the component id {dup!r}")
    digest = hashlib.sha256(json.dumps(seed, sort_keys=True).encode()).hexdigest()
    bom = cdx.new_bom(f"bundle:{name}@{version}:{digest}", None)
    bom.metadata.component = Component(type=ComponentType.APPLICATION, name=name, version=version,
                                       bom_ref=f"bundle:{name}@{version}")
    for c in components:
        bom.components.add(c)
    return cdx.serialize(bom, "bundle SBOM")


def _bundle_name(layout: BundleLayout) -> tuple[str, str]:
    try:
        doc = yaml.safe_load(layout.manifest.read_text()) or {}
        meta = doc.get("metadata") or {}
        return str(meta.get("name") or "medai-bundle"), str(meta.get("version") or "0.0.0")
    except (OSError, yaml.YAMLError, AttributeError):
        return "medai-bundle", "0.0.0"


def _model_files(layout: BundleLayout, a, workers: int) -> list[tuple[str, str]]:
    """(path relative to the model directory, sha256) of every file.

    Hashes come from ``a.meta["files"]`` when the build recorded them (keys relative to the model directory,
    or to the bundle); any file without one is hashed from disk.
    """
    known = a.meta.get("files") or {}
    if isinstance(known, list):
        known = {f.get("path"): f.get("sha256") for f in known if isinstance(f, dict)}
    base = a.path.rstrip("/") + "/"
    paths = sorted(a.paths or [a.path])

    def short(rel: str) -> str:
        return rel[len(base):] if rel.startswith(base) else rel

    def given(rel: str) -> str:
        sha = str(known.get(short(rel)) or known.get(rel) or "")
        return sha if is_sha256_hex(sha) else ""

    def hash_one(rel: str) -> str:
        p = layout.root / rel
        if p.is_symlink() or not p.is_file():
            raise TrustError(f"model {a.name}: {rel} is not a regular file in the bundle")
        return sha256_file(p)

    todo = [p for p in paths if not given(p)]
    with ThreadPoolExecutor(max_workers=max(1, workers)) as ex:
        hashed = dict(zip(todo, ex.map(hash_one, todo)))
    return [(short(p), given(p) or hashed[p]) for p in paths]


def _model_component(a, files: list[tuple[str, str]]) -> Component:
    source = a.ref or str(a.meta.get("source") or "")
    revision = str(a.meta.get("revision") or "") or (source.rsplit("@", 1)[1] if source.startswith("hf://") and "@" in source else "")
    model = Component(
        type=ComponentType.MACHINE_LEARNING_MODEL, name=a.name, version=revision or None, bom_ref=f"model:{a.name}",
        properties=cdx.props([("medai:kind", "model"), ("medai:path", a.path), ("medai:source", source),
                              ("medai:files", str(len(files)))]))
    for rel, sha in files:
        model.components.add(Component(type=ComponentType.FILE, name=rel, bom_ref=f"model:{a.name}:{rel}",
                                       hashes=[cdx.sha256_hash(sha)]))
    return model
