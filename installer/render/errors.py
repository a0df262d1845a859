from installer.core.errors import MedaiError


class ImageGateError(MedaiError):
    """An image reference the bundle cannot serve: untagged, `latest`, malformed, or missing from the bundle."""


class RenderError(MedaiError):
    """A chart that cannot be rendered, or a rendered object that fails its schema."""
