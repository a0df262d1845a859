"""SBOMs: CycloneDX 1.6 per image (read from the image's own layers) and for the whole bundle."""
from installer.trust.sbom.write import component_counts, write_sboms

__all__ = ["write_sboms", "component_counts"]
