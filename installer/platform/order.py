"""The one order platform releases are applied in, keyed by the bundle's release names, with what each needs.

CNI first (nodes stay NotReady without it), then the load balancer and storage (they need running pods), then
Vault (Raft on Longhorn volumes; it holds every platform secret, the database credentials included), the
PostgreSQL operator and its Clusters (on Longhorn, owner passwords from Vault), what keeps its data there
(Keycloak, then Harbor's Redis and Harbor, whose login goes through Keycloak), and last the GPU tier (the device plugin before the
vLLM pods ask for GPUs). Install and upgrade walk it forward; rollback and uninstall walk it backward.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

# release -> the releases it needs applied (and ready) before it
NEEDS: dict[str, tuple[str, ...]] = {
    "cilium": (),
    "metallb": ("cilium",),
    "longhorn": ("cilium",),
    "vault": ("longhorn",),
    "cloudnative-pg": ("longhorn", "vault"),
    "keycloakx": ("cloudnative-pg", "vault", "metallb"),
    "medai-harbor-redis": ("vault", "longhorn"),
    "harbor": ("cloudnative-pg", "vault", "longhorn", "metallb", "keycloakx", "medai-harbor-redis"),
    "nvidia-device-plugin": ("cilium",),
    "medai-inference": ("nvidia-device-plugin", "vault", "longhorn"),
}
ORDER: tuple[str, ...] = tuple(NEEDS)
# Applied without Helm's --wait: Vault's pods are never Ready while sealed; its after-release hook (init, unseal,
# configure) is what makes them Ready, so waiting first could only time out.
NO_WAIT = frozenset({"vault"})

T = TypeVar("T")


def ordered(items: Iterable[T], name=lambda item: item) -> list[T]:
    """Items in the one order by their release name; a release medai does not know (a site's own chart) comes
    after every known one, in the order given."""
    items = list(items)
    rank = {n: i for i, n in enumerate(ORDER)}
    return sorted(items, key=lambda it: (rank.get(name(it), len(rank)), items.index(it)))
