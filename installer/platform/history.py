"""What Helm's release history says to do: after a failed upgrade, and for a rollback to a bundle's version.

Helm 3.18's `helm upgrade --atomic` rolls a failed upgrade back itself; when it cannot (the process was killed,
the rollback failed, a release is stuck in pending-*), the decision below is taken from `helm history -o json`.
"""
from __future__ import annotations

from dataclasses import dataclass

GOOD = ("deployed", "superseded")
STUCK = ("pending-install", "pending-upgrade", "pending-rollback")


@dataclass
class HelmDecision:
    release: str
    action: str  # ok | rollback | stop
    revision: int | None
    reason: str


def after_upgrade(release: str, before: list[dict], after: list[dict], upgrade_rc: int) -> HelmDecision:
    """``before``/``after``: `helm history RELEASE -o json` before and after `helm upgrade --atomic`."""
    prev = max((h for h in before if h.get("status") in GOOD), key=lambda h: h["revision"], default=None)
    if not after:
        return HelmDecision(release, "stop", None, "helm history is empty after the upgrade")
    last = max(after, key=lambda h: h["revision"])
    newer = prev is None or last["revision"] > prev["revision"]
    if upgrade_rc == 0 and last["status"] == "deployed" and newer:
        if (last.get("description") or "").startswith("Rollback to"):
            return HelmDecision(release, "stop", last["revision"], f"helm rolled back itself: {last['description']}")
        return HelmDecision(release, "ok", last["revision"], f"revision {last['revision']} deployed ({last.get('chart')})")
    if last["status"] == "deployed" and (last.get("description") or "").startswith("Rollback to"):
        return HelmDecision(release, "stop", last["revision"],
                            f"the upgrade failed and --atomic rolled back ({last['description']}); rollout stopped")
    if last["status"] in ("failed", *STUCK):
        good = max((h for h in after if h.get("status") in GOOD and h["revision"] < last["revision"]),
                   key=lambda h: h["revision"], default=None)
        if good is None:
            return HelmDecision(release, "stop", None, f"revision {last['revision']} {last['status']} and no earlier "
                                "good revision to roll back to")
        return HelmDecision(release, "rollback", good["revision"],
                            f"revision {last['revision']} is {last['status']}: roll back to {good['revision']} ({good.get('chart')})")
    return HelmDecision(release, "stop", last["revision"], f"unexpected state: rc {upgrade_rc}, revision "
                        f"{last['revision']} {last['status']}")


def rollback_target(history: list[dict], version_wanted: str) -> int | None:
    """For `medai rollback`: the newest good revision whose chart is ``NAME-VERSION`` of the previous bundle."""
    hits = [h for h in history if h.get("status") in GOOD and str(h.get("chart", "")).endswith("-" + version_wanted)]
    return max((h["revision"] for h in hits), default=None)
