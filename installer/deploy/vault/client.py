"""hvac clients for the Vault members the inventory names, and Vault's errors as one-line VaultErrors."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import hvac
import hvac.exceptions
import requests

from installer.core.errors import VaultError
from installer.deploy.vault.portforward import pod_forwards
from installer.deploy.vault.settings import Member, VaultSettings

TIMEOUT_S = 15


@dataclass
class Endpoint:
    name: str
    addr: str
    verify: str | bool

    def client(self, token: str | None = None) -> hvac.Client:
        # hvac reads VAULT_TOKEN / ~/.vault-token when no token is given: pass "" so nothing ambient is used.
        return hvac.Client(url=self.addr, token=token or "", verify=self.verify, timeout=TIMEOUT_S)


def _verify(s: VaultSettings) -> str | bool:
    return str(s.ca_cert) if s.ca_cert else True


@contextlib.contextmanager
def endpoints(s: VaultSettings) -> Iterator[list[Endpoint]]:
    """Every Vault member's own address: the inventory's list, or port-forwards to the in-cluster pods."""
    if s.members:
        yield [Endpoint(m.name, m.addr, _verify(s)) for m in s.members]
        return

    with pod_forwards(s) as forwarded:
        yield [Endpoint(m.name, m.addr, _verify(s)) for m in forwarded]


def service_endpoint(s: VaultSettings, members: list[Endpoint]) -> Endpoint:
    """Where configuration goes: the service address when given, else the first member (Raft forwards)."""
    if s.addr:
        return Endpoint("service", s.addr, _verify(s))
    return members[0]


@contextlib.contextmanager
def vault_call(ep: Endpoint | Member, what: str) -> Iterator[None]:
    """Turn hvac/requests failures into one line naming the member and the call."""
    try:
        yield
    except hvac.exceptions.Forbidden as e:
        raise VaultError(f"vault {ep.name} ({ep.addr}): {what}: permission denied ({_first(e)})") from None
    except hvac.exceptions.VaultError as e:
        raise VaultError(f"vault {ep.name} ({ep.addr}): {what}: {_first(e)}") from None
    except requests.exceptions.SSLError as e:
        raise VaultError(f"vault {ep.name} ({ep.addr}): {what}: TLS verification failed ({_short(e)}); "
                         f"check medai_vault_ca_cert") from None
    except requests.exceptions.RequestException as e:
        raise VaultError(f"vault {ep.name} ({ep.addr}): {what}: unreachable ({_short(e)})") from None


def _first(e: Exception) -> str:
    errors = getattr(e, "errors", None)
    if errors:
        return "; ".join(str(x) for x in errors)[:300]
    return (str(e).splitlines() or [type(e).__name__])[0][:300]


def _short(e: Exception) -> str:
    return type(e).__name__ if not str(e) else str(e).splitlines()[0][:200]
