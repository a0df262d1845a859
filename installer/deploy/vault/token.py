"""A short-lived root token from the operators' shares (`operator generate-root` semantics), revoked after use.

medai keeps no standing admin token: the initial root token is returned encrypted to the security officer's
key and revoked after setup; each later admin action (configure, rotate-cert) asks for the threshold of
shares again, builds a root token with a one-time pad Vault generates, and revokes it on the way out.
"""
from __future__ import annotations

import base64
import contextlib
from collections.abc import Iterator

import hvac
import hvac.exceptions

from installer.core.errors import VaultError
from installer.deploy.vault.client import Endpoint, vault_call


def decode_otp_token(encoded: str, otp: str) -> str:
    """Vault's encoded_token is base64(token XOR otp) (OpenBao and Vault >= 1.10, server-generated OTP)."""
    raw = base64.b64decode(encoded + "=" * (-len(encoded) % 4))
    if len(raw) != len(otp):
        raise VaultError("generate-root: the encoded token and the one-time pad differ in length")
    return bytes(a ^ b for a, b in zip(raw, otp.encode())).decode()


def generate_root(ep: Endpoint, shares: list[str]) -> str:
    client = ep.client()
    try:
        status = client.sys.read_root_generation_progress()
    except hvac.exceptions.UnsupportedOperation:
        raise VaultError(f"vault {ep.name} ({ep.addr}): sys/generate-root is turned off (OpenBao >= 2.5.3 default): "
                         f"set disable_unauthed_generate_root_endpoints = false on the listener") from None
    with vault_call(ep, "generate-root"):
        if status.get("started"):
            client.sys.cancel_root_generation()  # a stale attempt (a crash mid-way) would swallow our shares
        attempt = client.sys.start_root_token_generation()
        otp, nonce = attempt["otp"], attempt["nonce"]
        resp: dict = attempt
        for share in shares:
            resp = client.sys.generate_root(key=share, nonce=nonce)
            if resp.get("complete"):
                break
    if not resp.get("complete"):
        with vault_call(ep, "generate-root cancel"):
            client.sys.cancel_root_generation()
        raise VaultError(f"vault {ep.name}: generate-root needs {resp.get('required')} shares, got {len(shares)}")
    return decode_otp_token(resp["encoded_token"], otp)


@contextlib.contextmanager
def root_session(ep: Endpoint, shares: list[str]) -> Iterator[hvac.Client]:
    """An hvac client with a fresh root token, revoked however the block ends."""
    token = generate_root(ep, shares)
    client = ep.client(token)
    try:
        yield client
    finally:
        with contextlib.suppress(Exception):
            client.auth.token.revoke_self()
        del token


def revoke_other_root_tokens(ep: Endpoint, client: hvac.Client) -> int:
    """Revoke every root token but the caller's (the initial one from init among them), by accessor."""
    with vault_call(ep, "list token accessors"):
        accessors = client.auth.token.list_accessors()["data"]["keys"]
        own = client.auth.token.lookup_self()["data"]["accessor"]
    revoked = 0
    for acc in accessors:
        if acc == own:
            continue
        with vault_call(ep, "look up token accessor"):
            info = client.auth.token.lookup_accessor(acc)["data"]
        if "root" in (info.get("policies") or []):
            with vault_call(ep, "revoke root token"):
                client.auth.token.revoke_accessor(acc)
            revoked += 1
    return revoked
