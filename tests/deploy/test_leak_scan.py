"""The post-run leak scan sees a secret in the forms it takes in files: JSON-escaped (a
multi-line Vault TLS key in ansible-runner's event files), base64 at any alignment, URL-encoded, and each line of
a multi-line secret alone."""
from __future__ import annotations

import base64
import json
from urllib.parse import quote

import pytest

from installer.deploy.runner import find_secrets

KEY = ("-----BEGIN PRIVATE KEY-----\n"
       "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj\n"
       "MzEfYyjiWA4R4/M2bS1GB4t7NXp98C3SC6dVMvDuictGeurT8jNbvJZHtCSuYEvu\n"
       "-----END PRIVATE KEY-----\n")
TOKEN = "s3cret-unseal-token-0123"


def _scan(tmp_path, text: str | bytes, secret: str) -> list[str]:
    f = tmp_path / "artifacts" / "job_events" / "1.json"
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_bytes(text if isinstance(text, bytes) else text.encode())
    return find_secrets(tmp_path / "artifacts", [secret])


def test_json_escaped_multi_line_secret_is_found(tmp_path):
    event = json.dumps({"event_data": {"res": {"content": KEY}}})
    assert KEY not in event  # the raw bytes are not there: only the escaped form is
    assert _scan(tmp_path, event, KEY)


@pytest.mark.parametrize("prefix", [b"", b"a", b"ab", b"abc", b"abcd"])
def test_base64_at_every_alignment_is_found(tmp_path, prefix):
    blob = base64.b64encode(prefix + TOKEN.encode() + b"-and-more")
    assert _scan(tmp_path, b"data: " + blob, TOKEN)


def test_url_encoded_and_single_line_forms_are_found(tmp_path):
    assert _scan(tmp_path, "GET /v1/x?token=" + quote(TOKEN + "/+ ", safe=""), TOKEN + "/+ ")
    one_line = KEY.splitlines()[2]
    assert _scan(tmp_path, f"line: {one_line}\n", KEY)


def test_public_pem_armour_alone_is_no_hit(tmp_path):
    assert _scan(tmp_path, "-----BEGIN PRIVATE KEY-----\n(some other key)\n-----END PRIVATE KEY-----\n", KEY) == []
