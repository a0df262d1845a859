"""The bundle manifest (apiVersion medai/v1, kind Bundle): schema and loading.

Every error names its path in the document, e.g. ``spec.images[2].ref: not a valid image reference``.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from installer.core.errors import ManifestError
from installer.core.yamldoc import field_path, lower_name, read_yaml
from installer.oci.mirrors import check_mirrors, mirror_problem

# docker reference grammar, simplified: [host[:port]/]path[:tag][@sha256:hex]
_REF = re.compile(
    r"^(?:(?P<host>[a-zA-Z0-9.-]+(?::[0-9]+)?|\[[0-9a-fA-F:]+\](?::[0-9]+)?)/)?"
    r"(?P<path>[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*)"
    r"(?::(?P<tag>[\w][\w.-]{0,127}))?"
    r"(?:@(?P<digest>sha256:[0-9a-f]{64}))?$"
)
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_NAME = re.compile(r"^[a-z0-9]([a-z0-9._-]*[a-z0-9])?$")
Name = lower_name(_NAME)
_PLATFORM = re.compile(r"^(linux|windows)/(amd64|arm64|arm|ppc64le|s390x|386|riscv64)(/v[5-8])?$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def check_image_ref(ref: str) -> str:
    if not _REF.match(ref) or (":" not in ref.rsplit("/", 1)[-1] and "@" not in ref):
        raise ValueError(f"{ref!r} is not a pinned image reference (need REPO:TAG or REPO@sha256:DIGEST)")
    return ref


class Metadata(_Strict):
    name: Name
    version: str = "0.0.0"
    description: str = ""


class Image(_Strict):
    ref: str
    key: str | None = Field(default=None, description="upstream cosign public key (PEM path); the build verifies the upstream signature")

    _ref = field_validator("ref")(classmethod(lambda cls, v: check_image_ref(v)))


class IgnoreImage(_Strict):
    """A reference discovery finds in a chart's output that is not an image anything pulls (a false positive)."""

    ref: str
    reason: str = Field(min_length=1, description="why it is not an image the site pulls")


class Chart(_Strict):
    name: str
    version: str
    repo: str | None = Field(None, description="HTTP(S) Helm repository URL or oci://registry/path")
    path: str | None = Field(None, description="a chart directory of the project (relative to the manifest), "
                                               "packaged by the build with helm package")
    values: dict[str, Any] = Field(default_factory=dict)
    extraImages: list[str] = Field(default_factory=list, description="images no rendered object names at all")
    ignoreImages: list[IgnoreImage] = Field(default_factory=list)
    namespace: str = "default"
    releaseName: str | None = None

    @field_validator("repo")
    @classmethod
    def _repo(cls, v: str | None) -> str | None:
        if v is None:
            return v
        if not re.match(r"^(https?|oci)://[^\s]+$", v):
            raise ValueError(f"{v!r} must be an http(s):// Helm repository or an oci:// reference")
        return v.rstrip("/")

    @field_validator("extraImages")
    @classmethod
    def _extra(cls, v: list[str]) -> list[str]:
        for ref in v:
            check_image_ref(ref)
        return v

    @model_validator(mode="after")
    def _one_source(self):
        if (self.repo is None) == (self.path is None):
            raise ValueError(f"chart {self.name}: give exactly one of repo (a Helm repository) and path (a local chart)")
        return self


class SigstoreRef(_Strict):
    bundle: str = Field(description="URL or path of the Sigstore bundle (.sigstore / .sigstore.json)")
    identity: str
    issuer: str


class File(_Strict):
    name: str
    url: str
    sha256: str
    sigstore: SigstoreRef | None = None
    hosts: list[str] = Field(default_factory=lambda: ["all"], description="inventory groups that need this file")

    @field_validator("sha256")
    @classmethod
    def _sha(cls, v: str) -> str:
        if not _SHA256.match(v):
            raise ValueError(f"{v!r} is not a lower-case hex sha256 (64 characters)")
        return v

    @field_validator("name")
    @classmethod
    def _fname(cls, v: str) -> str:
        if "/" in v or v in (".", "..") or not v:
            raise ValueError(f"{v!r} must be a plain file name")
        return v

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not re.match(r"^(https?|file)://", v) and not v.startswith("/"):
            raise ValueError(f"{v!r} must be an http(s)://, file:// URL or an absolute path")
        return v


class Model(_Strict):
    name: str
    source: str = Field(description="hf://ORG/REPO@REVISION, file:///path or /path")
    allowPatterns: list[str] | None = None
    endpoint: str | None = Field(default=None, description="Hugging Face endpoint (internal mirror); HF_ENDPOINT otherwise")

    @field_validator("source")
    @classmethod
    def _source(cls, v: str) -> str:
        if v.startswith("hf://"):
            if not re.match(r"^hf://[\w.-]+/[\w.-]+@[\w.-]+$", v):
                raise ValueError(f"{v!r} must be hf://ORG/REPO@REVISION (pin a revision)")
        elif not (v.startswith("file://") or v.startswith("/") or v.startswith("./")):
            raise ValueError(f"{v!r} must be hf://ORG/REPO@REVISION, file:///path or a path")
        return v

    @field_validator("name")
    @classmethod
    def _mname(cls, v: str) -> str:
        if not _NAME.match(v.lower()) or "/" in v:
            raise ValueError(f"{v!r} must be a plain name (no '/')")
        return v


class OsRepository(_Strict):
    """A vendor's package repository (e.g. NVIDIA's container toolkit), trusted only through its pinned key."""
    name: Name
    url: str | None = Field(default=None, description="apt: the archive root (dists/ below it, or the flat suite)")
    suite: str | None = Field(default=None, description="apt suite (dists/SUITE/), or a flat path ending in '/'")
    components: list[str] = Field(default_factory=lambda: ["main"], description="apt components (not for flat repositories)")
    baseurl: str | None = Field(default=None, description="dnf baseurl (repodata/ below it)")
    key: str = Field(description="URL or path of the repository's OpenPGP signing key (armored or binary)")
    fingerprint: str = Field(description="the signing key's full primary fingerprint (40 hex), pinned out of band")
    packages: list[str]
    groups: list[str] = Field(default_factory=lambda: ["gpu"], description="inventory groups whose hosts install them")

    @field_validator("fingerprint")
    @classmethod
    def _fpr(cls, v: str) -> str:
        v = v.replace(" ", "").upper()
        if not re.match(r"^[0-9A-F]{40}$", v):
            raise ValueError(f"{v!r} is not a full OpenPGP fingerprint (40 hex digits)")
        return v

    @field_validator("url", "baseurl", "key")
    @classmethod
    def _where(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^(https?|file)://", v) and not v.startswith("/"):
            raise ValueError(f"{v!r} must be an http(s)://, file:// URL or an absolute path")
        return v.rstrip("/") if v and not v.startswith("/") else v

    @field_validator("groups")
    @classmethod
    def _groups(cls, v: list[str]) -> list[str]:
        if not v or "all" in v:
            raise ValueError("list the inventory groups it serves (e.g. [gpu]); a vendor repository never serves all")
        return v


class OsPackages(_Strict):
    release: Literal["debian-12", "ubuntu-22.04", "ubuntu-24.04", "rhel-9", "rocky-9"]
    arch: str = "amd64"
    packages: list[str]
    groups: dict[str, list[str]] = Field(default_factory=dict, description="extra packages per inventory group, e.g. gpu")
    mirror: str | None = Field(default=None, description="archive URL on the connected side; the release's default otherwise")
    repositories: list[OsRepository] = Field(default_factory=list, description="extra signed vendor repositories")


class Policy(_Strict):
    registries: list[str] | None = Field(
        default=None, description="allow-list of registries (HOST or HOST/PATH-PREFIX) images may come from; unset: any")


class Spec(_Strict):
    policy: Policy = Field(default_factory=Policy)
    platforms: list[str] = Field(default_factory=lambda: ["linux/amd64"])
    images: list[Image] = Field(default_factory=list)
    charts: list[Chart] = Field(default_factory=list)
    files: list[File] = Field(default_factory=list)
    models: list[Model] = Field(default_factory=list)
    osPackages: list[OsPackages] = Field(default_factory=list)
    mirrors: dict[str, str] = Field(default_factory=dict, description="registry -> HOST[/PATH] it is fetched through at build time")

    @field_validator("mirrors")
    @classmethod
    def _mirrors(cls, v: dict[str, str]) -> dict[str, str]:
        for upstream, target in v.items():
            if problem := mirror_problem(upstream, target):
                raise ValueError(problem)
        return check_mirrors(v, "mirrors")

    @field_validator("platforms")
    @classmethod
    def _platforms(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("at least one platform is required")
        for p in v:
            if not _PLATFORM.match(p):
                raise ValueError(f"{p!r} is not an OS/ARCH platform such as linux/amd64")
        return v

    @model_validator(mode="after")
    def _unique(self) -> Spec:
        for section, key in (("files", "name"), ("models", "name"), ("charts", "name")):
            seen: set[str] = set()
            for i, item in enumerate(getattr(self, section)):
                val = getattr(item, key)
                if val in seen:
                    raise ValueError(f"{section}[{i}].{key}: {val!r} appears twice")
                seen.add(val)
        return self


class BundleManifest(_Strict):
    apiVersion: Literal["medai/v1"]
    kind: Literal["Bundle"]
    metadata: Metadata
    spec: Spec


def parse_manifest(data: Any, source: str = "<manifest>") -> BundleManifest:
    if not isinstance(data, dict):
        raise ManifestError(f"{source}: the manifest must be a YAML mapping")
    try:
        return BundleManifest.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        loc = field_path(err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
        elif err["type"] == "missing":
            msg = "required field is missing"
        more = f" (and {len(e.errors()) - 1} more)" if len(e.errors()) > 1 else ""
        raise ManifestError(f"{source}: {loc}: {msg}{more}") from None


def load_manifest(path: str | Path) -> BundleManifest:
    return parse_manifest(read_yaml(path, ManifestError, "manifest"), str(path))
