"""What `medai bundle build` is asked for (BuildOptions), what it carries between its steps (BuildContext) and
what it reports (BuildSummary)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from installer.bundle.artifacts import Artifact
from installer.bundle.layout import BundleLayout
from installer.bundle.lock import Lock
from installer.bundle.manifest import BundleManifest, Spec
from installer.core.progress import Progress


@dataclass
class BuildOptions:
    manifest: Path
    out: Path
    lock: Path | None = None  # default: <manifest stem>.lock.yaml beside the manifest
    locked: bool = False
    sign_key: Path | None = None
    sigstore: bool = False
    platforms: list[str] | None = None  # overrides spec.platforms
    with_tools: bool = True
    registry_client: Any = None  # an installer.oci.registry.RegistryClient (tests pass their own)
    os_cache_dir: Path | None = None
    progress: Progress | None = None
    mirrors: dict[str, str] = field(default_factory=dict)  # --mirror REGISTRY=HOST[/PATH], over spec.mirrors
    base: Path | None = None  # differential: carry only files the base index (or bundle dir) lacks
    sbom_cache_dir: Path | None = None  # layer facts for SBOMs by digest (default: $MEDAI_CACHE/sbom-layers)


@dataclass
class BuildSummary:
    bundle: str
    name: str
    version: str
    lock: str
    counts: dict[str, int]
    total_bytes: int
    fetched_bytes: int
    reused_bytes: int
    seconds: float
    index_sha256: str
    signed: bool
    sigstore: bool
    notes: list[str] = field(default_factory=list)
    bootstrap_sha256: str | None = None  # the fingerprint the site checks bootstrap.py against, out of band
    bootstrap_fingerprint_file: str | None = None

    def to_json(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass
class BuildContext:
    """The state one build passes from step to step."""

    opts: BuildOptions
    progress: Progress
    manifest_path: Path
    manifest: BundleManifest
    platforms: list[str]
    lock_path: Path
    old_lock: Lock
    layout: BundleLayout
    previous: dict | None  # the index of the build this one refreshes (read before it was removed)
    signing_key: Any = None
    started: float = 0.0
    new_lock: Lock = field(default_factory=Lock)
    artifacts: list[Artifact] = field(default_factory=list)
    known: dict[str, str] = field(default_factory=dict)  # bundle-relative path -> sha256 computed while writing
    keep: set[Path] = field(default_factory=set)  # files this build produced (everything else is pruned)
    notes: list[str] = field(default_factory=list)
    # filled in by the steps
    chart_results: dict[str, Any] = field(default_factory=dict)
    needed_by: dict[str, list[str]] = field(default_factory=dict)  # image ref -> charts that start it
    images: list = field(default_factory=list)  # installer.oci.images.CollectedImage
    upstream: dict[str, list] = field(default_factory=dict)  # digest -> verified upstream signatures
    oci: Any = None  # the bundle's OCILayout once images are collected
    layer_facts: Any = None
    manifest_bytes: bytes = b""
    index_bytes: bytes = b""

    @property
    def spec(self) -> Spec:
        return self.manifest.spec

    @property
    def base_dir(self) -> Path:
        """Relative paths in the manifest (local charts, files, keys) are relative to its directory."""
        return self.manifest_path.parent

    def produced(self, path: Path, sha256: str) -> str:
        """Record a file this build wrote (kept by the prune, hash known to the index); returns its bundle path."""
        rel = self.layout.rel(path)
        self.known[rel] = sha256
        self.keep.add(path)
        return rel
