"""Certificates and keys on the control host: the kubeconfig's client certificate, and the operators' OpenPGP keys
(unseal shares are encrypted to them; an expired key cannot receive a new share)."""
from __future__ import annotations

import base64
import datetime as dt
import shutil
import subprocess
import tempfile
from pathlib import Path

import yaml

from installer.certs.model import Cert, from_pem

GPG_TIMEOUT_S = 20


def kubeconfig_certs(path: Path) -> list[Cert]:
    """Each user's client-certificate-data in the kubeconfig medai fetched (none there: nothing to report)."""
    if not path.is_file():
        return []
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        return [Cert("kubeconfig", "kubeconfig", str(path), error=f"unreadable: {str(e).splitlines()[0][:120]}")]
    out = []
    for u in doc.get("users") or []:
        data = ((u or {}).get("user") or {}).get("client-certificate-data")
        if not data:
            continue
        try:
            pem = base64.b64decode(data)
        except ValueError:
            pem = b""
        out.append(from_pem(pem, "kubeconfig", f"client certificate of user {u.get('name')}", str(path)))
    return out


def _utc(epoch: str) -> dt.datetime | None:
    return dt.datetime.fromtimestamp(int(epoch), dt.UTC) if epoch else None


def pgp_key(path: Path, operator: str) -> Cert:
    """The primary key's and its encryption subkey's expiry (the earlier one), read by gpg without importing."""
    where = str(path)
    gpg = shutil.which("gpg")
    if gpg is None:
        return Cert("operators", f"OpenPGP key of {operator}", where, error="gpg is not installed on the control host")
    with tempfile.TemporaryDirectory() as home:
        try:
            p = subprocess.run([gpg, "--homedir", home, "--batch", "--with-colons", "--import-options", "show-only",
                                "--import", str(path)], capture_output=True, text=True, timeout=GPG_TIMEOUT_S)
        except (OSError, subprocess.TimeoutExpired) as e:
            return Cert("operators", f"OpenPGP key of {operator}", where, error=f"gpg: {e}")
        finally:  # an agent gpg may have started for this home
            if shutil.which("gpgconf"):
                subprocess.run(["gpgconf", "--homedir", home, "--kill", "all"], capture_output=True, timeout=GPG_TIMEOUT_S)
    rows = [ln.split(":") for ln in p.stdout.splitlines()]
    keys = [r for r in rows if r[0] in ("pub", "sub") and len(r) > 11]
    if not keys:
        return Cert("operators", f"OpenPGP key of {operator}", where, error="not an OpenPGP public key")
    uid = next((r[9] for r in rows if r[0] == "uid" and len(r) > 9), operator)
    pub = keys[0]
    enc = [r for r in keys[1:] if "e" in r[11]] or [pub]
    expiries = [e for e in (_utc(pub[6]), *(_utc(r[6]) for r in enc)) if e is not None]
    return Cert("operators", f"OpenPGP key of {operator}", where, subject=uid, issuer=uid, not_before=_utc(pub[5]),
                not_after=min(expiries) if expiries else None, serial=pub[4])
