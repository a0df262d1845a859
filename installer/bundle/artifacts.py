"""index.json read as types: each artifact an Artifact, the whole document a BundleIndex.

The index is parsed once, from bytes whose signature was checked (installer.bundle.layout.parse_index_bytes),
and carried as a BundleIndex; no module outside installer.bundle reads its "artifacts" list as a dict.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from installer.core.errors import RegistryError
from installer.oci.refs import DIGEST, ImageRef, parse_ref


@dataclass
class Artifact:
    kind: str
    name: str
    path: str
    size: int
    sha256: str
    ref: str = ""
    digest: str | None = None
    paths: list[str] = field(default_factory=list)
    neededBy: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict:
        d = asdict(self)
        if d["digest"] is None:
            del d["digest"]
        if not d["paths"]:
            d["paths"] = [self.path]
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Artifact:
        """An index entry as written (a missing field takes its empty value; unknown keys are not kept)."""
        given = {f.name: d[f.name] for f in fields(cls) if f.name in d and d[f.name] is not None}
        given.setdefault("kind", "")
        given.setdefault("name", "")
        given.setdefault("path", "")
        given.setdefault("size", 0)
        given.setdefault("sha256", "")
        meta, paths = given.get("meta"), given.get("paths")
        given["meta"] = dict(meta) if isinstance(meta, Mapping) else {}
        given["paths"] = list(paths) if isinstance(paths, list) and paths else [given["path"]]
        return cls(**given)

    @property
    def label(self) -> str:
        """'kind ref-or-name': how errors name the artifact to the operator."""
        return f"{self.kind} {self.ref or self.name}"

    @property
    def repository(self) -> str:
        """An image's REGISTRY/REPOSITORY (no tag, no digest); '' for anything else or a malformed reference."""
        if self.kind != "image":
            return ""
        try:
            return parse_ref(self.ref or self.name).repo_name
        except RegistryError:
            return ""

    @property
    def platform_digests(self) -> dict[str, str]:
        """An image's {platform: platform manifest digest}, as the build recorded them (meta.platformDigests: the
        manifests of a multi-arch index the bundle carries, or a single-platform image's own digest); {} for an
        index written before they were recorded."""
        found = self.meta.get("platformDigests")
        if not isinstance(found, Mapping):
            return {}
        return {str(p): d for p, d in found.items() if isinstance(d, str) and DIGEST.match(d)}

    def pinned_digest(self, platform: str | None) -> str | None:
        """The digest that serves PLATFORM from a registry `bundle push` fills: its platform manifest's; the image's
        own digest where no platform manifest digest is recorded for it (an older index, a bundle of several
        platforms: the render's image gate refuses that digest when it names an index the bundle reduced)."""
        return self.platform_digests.get(platform or "") or self.digest


class BundleIndex(Mapping[str, Any]):
    """A parsed index.json: typed artifacts, with the document itself readable as a read-only mapping."""

    def __init__(self, doc: Mapping[str, Any]):
        self._doc = dict(doc)
        self._artifacts = [Artifact.from_json(a) for a in self._doc.get("artifacts") or [] if isinstance(a, Mapping)]

    @classmethod
    def of(cls, index: Mapping[str, Any] | None) -> BundleIndex:
        return index if isinstance(index, BundleIndex) else cls(index or {})

    def __getitem__(self, key: str) -> Any:
        return self._doc[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._doc)

    def __len__(self) -> int:
        return len(self._doc)

    def to_json(self) -> dict[str, Any]:
        return dict(self._doc)

    @property
    def platforms(self) -> list[str]:
        """The platforms the bundle was built for (index.json's "platforms")."""
        return [str(p) for p in self._doc.get("platforms") or []]

    @property
    def site_platform(self) -> str | None:
        """The one platform every node of the site runs (None for a bundle of several: no single platform manifest
        serves them all)."""
        return self.platforms[0] if len(self.platforms) == 1 else None

    @property
    def files(self) -> list[dict]:
        return list(self._doc.get("files") or [])

    def artifacts(self, kind: str | None = None) -> list[Artifact]:
        return [a for a in self._artifacts if kind is None or a.kind == kind]

    def named(self, kind: str, name: str) -> Artifact | None:
        return next((a for a in self._artifacts if a.kind == kind and a.name == name), None)

    def chart(self, name: str) -> Artifact | None:
        return self.named("chart", name)

    def images(self, repository: str | None = None) -> list[Artifact]:
        """The image artifacts, or those of one repository (written as docker does: ``hashicorp/vault`` is
        ``docker.io/hashicorp/vault``)."""
        if repository is None:
            return self.artifacts("image")
        try:
            wanted = parse_ref(repository).repo_name
        except RegistryError:
            return []
        return [a for a in self.artifacts("image") if a.repository == wanted]

    def pinned_image(self, repository: str, platform: str | None = None) -> str | None:
        """REGISTRY/REPOSITORY[:TAG]@DIGEST of the first carried image of that repository with a digest, pinned to
        the manifest of PLATFORM (default: the bundle's one platform; see Artifact.pinned_digest), else None."""
        for a in self.images(repository):
            digest = a.pinned_digest(platform or self.site_platform)
            if digest:
                ref = parse_ref(a.ref or a.name)
                return ImageRef(ref.registry, ref.repository, ref.tag, digest).name
        return None
