"""Read-only access to an OCI image layout (image-spec 1.1): blobs, manifests, platforms, layers."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from installer.core.errors import TrustError
from installer.core.hashing import digest_hex
from installer.oci.media_types import INDEX_TYPES, MANIFEST_TYPES, platform_string

# Manifests and configs are small; anything bigger is not one.
MAX_JSON = 8 * 1024 * 1024


@dataclass(frozen=True)
class PlatformImage:
    """One runnable image: a manifest, its config and its layers (bottom first)."""

    digest: str
    platform: str  # "linux/amd64", "linux/arm/v7"; "" when the config does not say
    config: dict
    layers: tuple[dict, ...]


class OciLayout:
    def __init__(self, root: Path):
        self.root = Path(root)
        self._json: dict[str, dict] = {}  # blobs are content-addressed: a parsed manifest never changes

    def blob(self, digest: str) -> Path:
        try:
            return self.root / "blobs" / "sha256" / digest_hex(digest)
        except ValueError as e:
            raise TrustError(f"{self.root}: {e}") from None

    def has(self, digest: str) -> bool:
        return self.blob(digest).is_file()

    def read_json(self, digest: str, what: str) -> dict:
        if digest in self._json:
            return self._json[digest]
        path = self.blob(digest)
        try:
            if path.stat().st_size > MAX_JSON:
                raise TrustError(f"{what}: blob {digest} is {path.stat().st_size} bytes, too big for a manifest or config")
            data = json.loads(path.read_bytes())
        except FileNotFoundError:
            raise TrustError(f"{what}: blob {digest} missing from {self.root}") from None
        except (ValueError, UnicodeDecodeError) as e:
            raise TrustError(f"{what}: blob {digest} is not valid JSON: {e}") from None
        if not isinstance(data, dict):
            raise TrustError(f"{what}: blob {digest} is not a JSON object")
        self._json[digest] = data
        return data

    def index(self) -> dict:
        path = self.root / "index.json"
        try:
            data = json.loads(path.read_bytes())
        except FileNotFoundError:
            return {"manifests": []}
        except (ValueError, UnicodeDecodeError) as e:
            raise TrustError(f"{path}: not valid JSON: {e}") from None
        return data if isinstance(data, dict) else {"manifests": []}

    def platform_images(self, digest: str, what: str) -> list[PlatformImage]:
        """The image(s) behind a manifest or index digest; for an index, each platform whose manifest is present."""
        doc = self.read_json(digest, what)
        media = doc.get("mediaType", "")
        if media in INDEX_TYPES or (not media and "manifests" in doc):
            out = []
            for desc in doc.get("manifests", []):
                ann = desc.get("annotations") or {}
                if ann.get("vnd.docker.reference.type") == "attestation-manifest":
                    continue
                if desc.get("mediaType") not in MANIFEST_TYPES or not self.has(desc.get("digest", "")):
                    continue
                out.append(self._manifest(desc["digest"], what, platform_string(desc.get("platform"))))
            if not out:
                raise TrustError(f"{what}: index {digest} has no platform manifest present in {self.root}")
            return sorted(out, key=lambda p: (p.platform, p.digest))
        if media in MANIFEST_TYPES or (not media and "layers" in doc):
            return [self._manifest(digest, what, "", doc)]
        raise TrustError(f"{what}: blob {digest} has media type {media!r}, not an image manifest or index")

    def _manifest(self, digest: str, what: str, platform: str, doc: dict | None = None) -> PlatformImage:
        doc = doc or self.read_json(digest, what)
        cfg_desc = doc.get("config") or {}
        config = self.read_json(cfg_desc.get("digest", ""), f"{what}: config") if cfg_desc.get("digest") else {}
        if not platform and config.get("os"):
            platform = platform_string({"os": config.get("os"), "architecture": config.get("architecture"),
                                      "variant": config.get("variant")})
        layers = tuple(d for d in doc.get("layers", []) if isinstance(d, dict))
        return PlatformImage(digest=digest, platform=platform, config=config, layers=layers)
