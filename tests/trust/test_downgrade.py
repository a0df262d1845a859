"""No downgrade: an older or equal, correctly signed bundle is refused as an upgrade unless
--allow-downgrade (a banner); with no run record, an unsigned --current is not believed."""
from __future__ import annotations

import os
import shutil

import pytest
from rich.console import Console

from installer.core.errors import TrustError
from installer.trust.downgrade import BANNER, refuse_downgrade
from installer.trust.keys import generate_keypair, load_private_key
from installer.upgrade.run import UpgradeOptions, make_plan
from tests.deploy.test_install_refusals import inventory, no_run_started
from tests.support.signed_bundle import make_signed_bundle

PASSWORD = b"downgrade-pass"


def test_build_times_are_compared():
    old, new = {"created": "2026-01-01T00:00:00Z"}, {"created": "2026-02-01T00:00:00Z"}
    assert refuse_downgrade(new, old, "B") is None
    assert refuse_downgrade(new, None, "B") is None
    for bad in (old, {"created": "2025-12-31T23:59:59Z"}, {}):
        with pytest.raises(TrustError, match="B: .*not an upgrade .*--allow-downgrade"):
            refuse_downgrade(bad, old, "B")
    assert refuse_downgrade(old, old, "B", allow=True).startswith(BANNER)


@pytest.fixture
def site(tmp_path, monkeypatch):
    k, pub = generate_keypair(tmp_path / "site", PASSWORD)
    key = load_private_key(k, PASSWORD)
    home = tmp_path / "home"
    monkeypatch.setenv("MEDAI_HOME", str(home))

    def bundle(name, created, weights):
        return make_signed_bundle(tmp_path / name, key, {"models/tiny/model.safetensors": weights},
                                  header={"created": created})

    v1 = bundle("v1", "2026-03-01T10:00:00Z", b"weights-1")
    v2 = bundle("v2", "2026-04-01T10:00:00Z", b"weights-2")
    return tmp_path, pub, home, v1, v2, inventory(tmp_path)


def _plan(inv, new, pub, current, **kw):
    out = open(os.devnull, "w")
    try:
        return make_plan(UpgradeOptions(inv, new.root, pub, current=current.root, plan_only=True, **kw),
                         Console(file=out, width=300))
    finally:
        out.close()


def test_older_signed_bundle_is_refused_unless_allowed(site):
    _tmp, pub, home, v1, v2, inv = site
    assert _plan(inv, v2, pub, v1).index["created"] == "2026-04-01T10:00:00Z"  # newer: fine
    with pytest.raises(TrustError, match=r"v1: built 2026-03-01T10:00:00Z, not after the installed bundle's "
                                         r"2026-04-01T10:00:00Z.*refused"):
        _plan(inv, v1, pub, v2)  # older
    with pytest.raises(TrustError, match=r"v2: built 2026-04-01T10:00:00Z, not after .*refused"):
        _plan(inv, v2, pub, v2)  # the same one again
    assert no_run_started(home)
    plan = _plan(inv, v1, pub, v2, allow_downgrade=True)
    assert plan.index["created"] == "2026-03-01T10:00:00Z"


def test_unsigned_current_is_not_believed_without_a_run_record(site):
    tmp, pub, _home, v1, v2, inv = site
    forged = tmp / "forged"
    shutil.copytree(v1.root, forged)
    (forged / "index.json.sig").unlink()  # e.g. an old index planted where medai_bundle_dir points
    from installer.bundle.layout import BundleLayout

    with pytest.raises(TrustError, match=f"{forged}: no run record names the installed bundle"):
        _plan(inv, v2, pub, BundleLayout.at(forged))
