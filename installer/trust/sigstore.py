"""Keyless Sigstore signatures: signed on the connected side, checked behind the gap with no network.

Signing needs an OIDC identity: the ambient credential of a CI pipeline (GitHub Actions, GitLab, Buildkite,
Google Cloud; what ``sigstore.oidc.detect_credential`` finds) or a token passed in. It talks to Fulcio and
Rekor, so it cannot run on a machine without internet; it is not executed by the tests here.

Verification is offline: certificate chain, SCT, Rekor inclusion proof and signed entry timestamp are all in
the Sigstore bundle, and the keys they are checked against come from a trusted root. The bundle carries the
trusted root it was signed under (sigstore/trusted_root.json, listed in index.json). Because that copy
travels inside what it vouches for, it is only used when every key and CA in it is also in a root the verifier
already trusts: sigstore-python's embedded production root, or one the operator passes with
``--sigstore-trusted-root`` (fetched out of band). An attacker cannot bring their own CA in the bundle.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from installer.bundle.layout import MAX_SIGSTORE, BundleLayout
from installer.core.atomic import atomic_write_text
from installer.core.errors import TrustError
from installer.core.hashing import CHUNK
from installer.core.safe_read import open_regular, read_regular_file

CARRIED_ROOT = "sigstore/trusted_root.json"


def _hashed(path: Path):
    """Stream the artifact through SHA-256 (memory does not grow with its size)."""
    from sigstore.hashes import Hashed
    from sigstore_models.common.v1 import HashAlgorithm

    h = hashlib.sha256()
    with os.fdopen(open_regular(path, TrustError), "rb") as f:  # a FIFO in its place is refused, not waited on
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return Hashed(algorithm=HashAlgorithm.SHA2_256, digest=h.digest())


def _load_bundle(bundle_path: Path):
    from sigstore.models import Bundle

    try:
        data = read_regular_file(bundle_path, MAX_SIGSTORE, TrustError, "not a Sigstore bundle")
    except OSError as e:
        raise TrustError(f"{bundle_path}: cannot read Sigstore bundle: {e.strerror}") from None
    if data is None:
        raise TrustError(f"{bundle_path}: cannot read Sigstore bundle: missing")
    try:
        return Bundle.from_json(data)
    except Exception as e:  # sigstore raises several types for malformed bundles
        raise TrustError(f"{bundle_path}: not a valid Sigstore bundle: {e}") from None


def production_root_json() -> bytes:
    """The production trusted root sigstore-python uses offline (its TUF cache, seeded from the wheel)."""
    from sigstore.models import ClientTrustConfig

    return ClientTrustConfig.production(offline=True).trusted_root._inner.to_json().encode()


def _root_keys(doc: dict) -> set[str]:
    """Every CA certificate and log key of a trusted root, as comparable strings."""
    out: set[str] = set()
    for section in ("certificateAuthorities", "timestampAuthorities"):
        for ca in doc.get(section, []):
            for cert in ca.get("certChain", {}).get("certificates", []):
                out.add(f"{section}:{cert.get('rawBytes')}")
    for section in ("tlogs", "ctlogs"):
        for log in doc.get(section, []):
            out.add(f"{section}:{log.get('publicKey', {}).get('rawBytes')}")
    return out


def anchored_root(carried: Path, anchor: Path | None = None) -> Path:
    """Return ``carried`` if all its keys are in the anchor root; raise naming the file otherwise."""
    try:
        carried_doc = json.loads(read_regular_file(carried, MAX_SIGSTORE, TrustError, "not a trusted root") or b"")
        anchor_doc = json.loads(anchor.read_bytes() if anchor else production_root_json())
    except (OSError, ValueError) as e:
        raise TrustError(f"{carried if not anchor else anchor}: unreadable trusted root: {e}") from None
    extra = _root_keys(carried_doc) - _root_keys(anchor_doc)
    if extra:
        src = anchor or "sigstore-python's production root"
        raise TrustError(
            f"{carried}: carries {len(extra)} key(s)/CA(s) not in {src}; "
            "pass --sigstore-trusted-root with a root obtained out of band"
        )
    return carried


@dataclass
class SigstoreCheck:
    artifact: str
    ok: bool
    detail: str
    identity: str
    issuer: str
    trusted_root: str


def verify_artifact(path: str | os.PathLike, *args, **kwargs) -> SigstoreCheck:
    """check_artifact (same arguments), but fail closed: raises TrustError naming the artifact when it fails."""
    check = check_artifact(path, *args, **kwargs)
    if not check.ok:
        raise TrustError(f"{path}: {check.detail}")
    return check


def check_artifact(
    path: str | os.PathLike,
    bundle_path: str | os.PathLike,
    identity: str,
    issuer: str,
    offline: bool = True,
    trusted_root: str | os.PathLike | None = None,
) -> SigstoreCheck:
    """Verify a Sigstore bundle over ``path`` for the exact certificate identity (SAN) and OIDC issuer.

    ``trusted_root``: a trusted_root.json to verify against; None means Sigstore production (offline=True:
    no TUF refresh, no network). Returns a failed SigstoreCheck on a failed check; raises TrustError only on
    unusable input (missing artifact, malformed bundle or root).
    """
    from sigstore.errors import VerificationError
    from sigstore.models import TrustedRoot
    from sigstore.verify import Verifier
    from sigstore.verify.policy import Identity

    logging.getLogger("sigstore._internal.tuf").setLevel(logging.ERROR)  # "offline mode" is what we asked for
    path, bundle_path = Path(path), Path(bundle_path)
    if not identity or not issuer:
        raise TrustError(f"{bundle_path}: a Sigstore check needs both the signer identity and the OIDC issuer")
    if not path.is_file():
        raise TrustError(f"{path}: artifact not found")
    bundle = _load_bundle(bundle_path)
    if trusted_root is not None:
        try:
            verifier = Verifier(trusted_root=TrustedRoot.from_file(str(trusted_root)))
        except Exception as e:
            raise TrustError(f"{trusted_root}: not a valid Sigstore trusted root: {e}") from None
        root_name = str(trusted_root)
    else:
        verifier = Verifier.production(offline=offline)
        root_name = "sigstore production" + (" (offline)" if offline else "")
    try:
        verifier.verify_artifact(_hashed(path), bundle, Identity(identity=identity, issuer=issuer))
    except VerificationError as e:
        return SigstoreCheck(str(path), False, f"Sigstore verification failed: {e}", identity, issuer, root_name)
    return SigstoreCheck(str(path), True, "Sigstore signature verified", identity, issuer, root_name)


def carry_trusted_root(bundle_root: str | os.PathLike, staging: bool = False) -> Path:
    """Write the trusted root in use into BUNDLE/sigstore/trusted_root.json (before index.json is written)."""
    from sigstore.models import ClientTrustConfig

    cfg = ClientTrustConfig.staging() if staging else ClientTrustConfig.production()
    out = Path(bundle_root) / CARRIED_ROOT
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(cfg.trusted_root._inner.to_json())
    return out


def sign_index_keyless(bundle_root: str | os.PathLike, index_bytes: bytes, identity_token: str | None = None,
                       staging: bool = False) -> Path:
    """Sign index.json keyless (Fulcio certificate + Rekor entry); writes BUNDLE/index.sigstore.json.

    Needs network access to Sigstore and an OIDC token: ``identity_token`` or the ambient CI credential.
    """
    from sigstore.models import ClientTrustConfig
    from sigstore.oidc import IdentityToken, detect_credential
    from sigstore.sign import SigningContext


    layout = BundleLayout.at(bundle_root)
    token = identity_token or detect_credential()
    if not token:
        raise TrustError("--sigstore: no OIDC identity found (run in a CI job with id-token permission, or pass a token)")
    cfg = ClientTrustConfig.staging() if staging else ClientTrustConfig.production()
    ctx = SigningContext.from_trust_config(cfg)
    try:
        with ctx.signer(IdentityToken(token), cache=False) as signer:
            bundle = signer.sign_artifact(index_bytes)
    except Exception as e:  # network, Fulcio or Rekor refusal: one line, no token in it
        raise TrustError(f"{layout.index}: keyless signing failed: {type(e).__name__}: {e}") from None
    atomic_write_text(layout.index_sigstore, bundle.to_json())
    return layout.index_sigstore
