"""Where generated secrets go: a sink with one method, ``put_secret(path, data)``.

The Vault KV v2 implementation (installer/deploy/vault/, built separately) satisfies this protocol: it writes
``data`` as one KV version at ``path`` under the site's mount. Nothing here logs or returns a secret's value.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable


@runtime_checkable
class SecretSink(Protocol):
    def put_secret(self, path: str, data: Mapping[str, str]) -> None:
        """Store ``data`` (string keys and values) at ``path``, replacing what was there."""
        ...

    def has_secret(self, path: str) -> bool:
        """True when ``path`` holds a secret (its value is not read)."""
        ...
