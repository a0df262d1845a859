"""Unseal every member with shares the operators type in, until Vault's threshold is met on each."""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import hvac.exceptions

from installer.deploy.vault.client import Endpoint, vault_call


@dataclass
class UnsealOutcome:
    member: str
    sealed: bool
    progress: int
    threshold: int


def unseal_member(ep: Endpoint, shares: list[str], settle_s: float = 20.0) -> UnsealOutcome:
    """Feed shares to one member until it unseals; stop early when it is already unsealed.

    A Raft follower that has not joined yet reports "not initialised": the shares let it join (retry_join),
    and it may answer "sealed, progress 0" while joining, so the shares are offered again until it settles."""
    client = ep.client()
    deadline = time.monotonic() + settle_s
    while True:
        with vault_call(ep, "read seal status"):
            st = client.sys.read_seal_status()
        if not st["sealed"] or not shares:
            break
        try:
            for share in shares[st.get("progress", 0):]:
                st = client.sys.submit_unseal_key(key=share)
                if not st["sealed"]:
                    break
        except hvac.exceptions.InvalidRequest as e:
            # A follower answers "not initialized" until retry_join has reached an unsealed leader.
            if "not initialized" not in str(e) or time.monotonic() > deadline:
                with vault_call(ep, "unseal"):
                    raise
            time.sleep(1)
            continue
        if not st["sealed"] or len(shares) < st.get("t", 0) or time.monotonic() > deadline:
            break
        time.sleep(1)
    return UnsealOutcome(ep.name, st["sealed"], st.get("progress", 0), st.get("t", 0))


def unseal_all(eps: list[Endpoint], ask_share: Callable[[int, int], str], threshold: int = 0) -> list[UnsealOutcome]:
    """Collect shares once (up to the threshold), unseal every sealed member with them.

    ``ask_share(i, threshold)`` returns the i-th share (1-based): from a hidden prompt or a stdin line."""
    sealed = []
    for ep in eps:
        with vault_call(ep, "read seal status"):
            st = ep.client().sys.read_seal_status()
        # A follower that has not joined yet reports t=0: the inventory's threshold stands in.
        threshold = max(threshold, st.get("t", 0))
        if st.get("sealed"):
            sealed.append(ep)
    if not sealed:
        return [unseal_member(ep, []) for ep in eps]
    shares: list[str] = []
    for i in range(threshold):
        share = ask_share(i + 1, threshold).strip()
        if not share:
            break
        shares.append(share)
    outcomes = []
    for ep in eps:
        outcomes.append(unseal_member(ep, shares if ep in sealed else []))
    return outcomes
