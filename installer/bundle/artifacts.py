"""index.json read as types: each artifact an Artifact, the whole document a BundleIndex.

The index is parsed once, from bytes whose signature was checked (installer.bundle.layout.parse_index_bytes),
and carried as a BundleIndex; no module outside installer.bundle reads its "artifacts" list as a dict.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from installer.core.errors import RegistryError
from installer.oci.refs import parse_ref


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

    def pinned_image(self, repository: str) -> str | None:
        """REGISTRY/REPOSITORY:TAG@DIGEST of the first carried image of that repository with a digest, else None."""
        for a in self.images(repository):
            if a.digest:
                ref = parse_ref(a.ref or a.name)
                return f"{ref.with_tag(ref.tag).name}@{a.digest}" if ref.tag else f"{ref.repo_name}@{a.digest}"
        return None
