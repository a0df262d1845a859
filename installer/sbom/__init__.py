"""SBOMs: CycloneDX 1.6 per image (read from the image's own layers) and for the whole bundle."""
from __future__ import annotations

from installer.sbom import write

__all__ = ["write_sboms", "component_counts"]


def __getattr__(name: str):
    # Lazy: the build imports layer_facts (light) for every run, but the CycloneDX library (write) only when an
    # SBOM is really written; a no-change rebuild reuses the previous SBOMs and never pays for it.
    if name in __all__:
        return getattr(write, name)
    raise AttributeError(name)
