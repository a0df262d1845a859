"""A Node's (or any object's) status conditions, as the API returns them: the one reading the upgrade's preflight
and `medai status` share."""
from __future__ import annotations

PRESSURES = ("DiskPressure", "MemoryPressure", "PIDPressure")


def condition(obj: dict, kind: str) -> dict | None:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c.get("type") == kind), None)


def not_ready(node: dict) -> str | None:
    """None when the node's Ready condition is True, else why not (its reason, or that it has none)."""
    ready = condition(node, "Ready")
    if ready is not None and ready.get("status") == "True":
        return None
    return (ready or {}).get("reason") or "no Ready condition"


def pressures(node: dict) -> list[str]:
    """The pressure conditions that are True, in PRESSURES' order."""
    return [kind for kind in PRESSURES if (condition(node, kind) or {}).get("status") == "True"]
