"""One exception type per domain. Messages name the file, field or artifact; the CLI prints them on one line."""


class MedaiError(Exception):
    """A user-facing error: printed as one line, exit code 2, no traceback.

    Callers that need to know what failed read the structured fields, never the message: ``ref`` (an image
    reference as the manifest or a chart gave it), ``artifact`` (a bundle artifact's name), ``path`` (a file),
    ``field`` (a manifest or inventory field path).
    """

    exit_code = 2

    def __init__(self, message: str = "", *, ref: str | None = None, artifact: str | None = None,
                 path: str | None = None, field: str | None = None):
        super().__init__(message)
        self.ref, self.artifact, self.path, self.field = ref, artifact, path, field

    def about(self, **fields) -> "MedaiError":
        """Fill in the fields not set yet (where the error was raised knows best); returns self for `raise`."""
        for name, value in fields.items():
            if getattr(self, name, None) is None:
                setattr(self, name, value)
        return self


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


class StateError(MedaiError):
    """The state directory ($MEDAI_HOME) or its lock: not trusted, or held by another command."""


class BackupError(MedaiError):
    """A backup set, its encryption, its components' own checks, or a restore's refusal."""
