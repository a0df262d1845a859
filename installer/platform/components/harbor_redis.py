"""Harbor's Redis (the project's chart charts/medai-harbor-redis, in Harbor's namespace, released before Harbor):
its site values come from Harbor's variables (installer/platform/components/harbor.py: the Secret synced from
Vault, the storage class, the Redis resources), and Harbor's flows declare who may reach it."""
from __future__ import annotations

from installer.platform.components import harbor
from installer.platform.flows import Flow

NAME = harbor.NAME  # its variables are Harbor's (medai_harbor_*)
NAMESPACE = harbor.NAMESPACE
CHART = harbor.REDIS_CHART
DEFAULTS = harbor.DEFAULTS


def values(v: dict) -> dict:
    return harbor.redis_values(v)


def flows(v: dict, ns: dict) -> list[Flow]:
    """None of its own: Redis calls nothing, and Harbor's flows name its clients (core, jobservice, registry, Trivy)."""
    return []
