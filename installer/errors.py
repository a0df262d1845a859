"""One exception type per domain. Messages name the file, field or artifact; the CLI prints them on one line."""


class MedaiError(Exception):
    """A user-facing error: printed as one line, exit code 2, no traceback."""

    exit_code = 2


class ManifestError(MedaiError):
    pass


class LockDriftError(MedaiError):
    pass


class RegistryError(MedaiError):
    pass


class SourceError(MedaiError):
    """A chart, file, model or OS package source could not be collected."""


class BundleError(MedaiError):
    """The bundle on disk is missing, incomplete or altered."""


class TrustError(MedaiError):
    """Keys, signatures, SBOMs."""


class InventoryError(MedaiError):
    pass


class LabError(MedaiError):
    pass


class InstallError(MedaiError):
    pass


class ComplianceError(MedaiError):
    pass


class VaultError(MedaiError):
    """Vault settings in the inventory, Vault's answers, shares, the site PKI."""
