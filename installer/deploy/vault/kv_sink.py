"""The SecretSink (installer/deploy/secret_sink.py) over Vault's KV v2: each put is one new version at the path.

Paths are the one catalogue's (installer/deploy/vault/catalogue.py), relative to the KV mount
("harbor/robots/cluster-pull" lives at medai/data/harbor/robots/cluster-pull); a leading mount name is accepted.
Values go only into the request body; errors name the path and the member, never a value.
"""
from __future__ import annotations

from collections.abc import Mapping

import hvac
import hvac.exceptions

from installer.core.errors import VaultError
from installer.deploy.vault.client import Endpoint, vault_call


class VaultKvSink:
    def __init__(self, client: hvac.Client, mount: str = "medai", endpoint: Endpoint | None = None):
        self._client, self.mount = client, mount.strip("/")
        self._ep = endpoint or Endpoint("vault", client.url, True)

    def _path(self, path: str) -> str:
        rel = path.strip("/")
        rel = rel[len(self.mount) + 1:] if rel.startswith(self.mount + "/") else rel
        if not rel or ".." in rel.split("/"):
            raise VaultError(f"secret path {path!r}: not a path under the KV mount {self.mount}/")
        return rel

    def put_secret(self, path: str, data: Mapping[str, str]) -> None:
        rel = self._path(path)
        if not data or not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
            raise VaultError(f"secret {self.mount}/{rel}: keys and values must be non-empty text")
        with vault_call(self._ep, f"write {self.mount}/{rel}"):
            self._client.secrets.kv.v2.create_or_update_secret(path=rel, secret=dict(data), mount_point=self.mount)

    def has_secret(self, path: str) -> bool:
        rel = self._path(path)
        with vault_call(self._ep, f"read metadata {self.mount}/{rel}"):
            try:
                meta = self._client.secrets.kv.v2.read_secret_metadata(path=rel, mount_point=self.mount)
            except hvac.exceptions.InvalidPath:  # 404: nothing was ever written there
                return False
        current = str((meta.get("data") or {}).get("current_version", 0))
        version = ((meta.get("data") or {}).get("versions") or {}).get(current) or {}
        # a deleted or destroyed current version holds nothing: the generator makes a new one
        return bool(version) and not version.get("deletion_time") and not version.get("destroyed")

    def read_secret(self, path: str) -> dict[str, str]:
        """The current version's data (for the install to sync it into a Kubernetes Secret in memory)."""
        rel = self._path(path)
        with vault_call(self._ep, f"read {self.mount}/{rel}"):
            r = self._client.secrets.kv.v2.read_secret_version(path=rel, mount_point=self.mount,
                                                               raise_on_deleted_version=True)
        return dict(r["data"]["data"])
