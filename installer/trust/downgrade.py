"""No downgrade: an older (or the same) correctly signed bundle is not an upgrade.

Every bundle's signed index carries its build time (`created`, UTC, written by the build's finish step; the
signature covers it, so it cannot be moved forward on the stick). `medai upgrade` compares it with the installed
bundle's: the one the newest successful run record names (its verified private copy), or, with no record, a
`--current` whose index verifies with the site key (never an unsigned one). Not newer = refused, naming both
times, unless `--allow-downgrade` is given: then a banner is printed and the run record keeps the flag (argv).
Replaying an old bundle would bring back old charts, images and model weights with their known flaws.
"""
from __future__ import annotations

import os
from datetime import UTC, datetime

from installer.core.errors import TrustError
from installer.trust.index_signature import index_signature_problem
from installer.trust.keys import load_public_key

ALLOW_FLAG = "--allow-downgrade"
BANNER = ("DOWNGRADE ALLOWED: " + ALLOW_FLAG + " was given; the bundle is not newer than the installed one "
          "(older charts, images and model weights come back)")


def built_at(index: dict) -> datetime | None:
    """The signed build time of a bundle index, or None when it carries none (hand-made test bundles)."""
    raw = index.get("created")
    if not isinstance(raw, str):
        return None
    try:
        t = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def refuse_downgrade(new_index: dict, installed_index: dict | None, where: str | os.PathLike,
                     allow: bool = False) -> str | None:
    """None when the new bundle is newer than the installed one (or nothing is installed that says when it was
    built); the banner when it is not and `allow`; otherwise TrustError naming both build times."""
    if installed_index is None:
        return None
    old = built_at(installed_index)
    if old is None:
        return None
    new = built_at(new_index)
    if new is not None and new > old:
        return None
    what = (f"built {new_index.get('created')}, not after the installed bundle's {installed_index.get('created')}"
            if new is not None else f"carries no build time (the installed bundle's is {installed_index.get('created')})")
    if allow:
        return f"{BANNER}: {where} {what}"
    raise TrustError(f"{where}: {what}: an older or equal bundle is not an upgrade (replayed?): refused; "
                     f"{ALLOW_FLAG} to go back knowingly")


def signed_installed_index(index_bytes: bytes, sig: bytes | None, key: str | os.PathLike,
                           where: str | os.PathLike) -> None:
    """With no run record to name the installed bundle, `--current` is trusted only when its index verifies
    with the site key (`key`, the public key file); TrustError naming it otherwise."""

    problem = index_signature_problem(load_public_key(key), index_bytes, sig, "index.json.sig")
    if problem:
        raise TrustError(f"{where}: no run record names the installed bundle, and its index does not verify with "
                         f"the site key ({problem}): refused (pass the installed bundle as --current)")
