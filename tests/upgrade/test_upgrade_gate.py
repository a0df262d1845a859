"""`medai upgrade` renders and gates the new bundle exactly as `medai install` does (installer/render's
render_site), on the verified private copy, before the cluster or any host is read: the real fixture charts
(Cilium, MetalLB, Longhorn), small stand-in images under their upstream names. A bundle missing one image
Longhorn's manager starts from a string (support-bundle-kit) is refused naming it; no run record is started."""
from __future__ import annotations

import os

import pytest
from rich.console import Console

from installer.core.errors import MedaiError
from installer.trust.keys import generate_keypair, load_private_key
from installer.trust.signing import sign_index
from installer.upgrade.run import UpgradeOptions, make_plan
from tests.support.fixture_bundles import make_fixture_bundle
from tests.support.fixture_charts import ROOT, needs_fixtures
from tests.upgrade.test_upgrade_plan import version_bundle

pytestmark = needs_fixtures
INVENTORY = ROOT / "inventories" / "example" / "site.yml"
MISSING = "docker.io/longhornio/support-bundle-kit:v0.0.61"


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("keys")
    k, pub = generate_keypair(tmp / "site", b"gate-pass")
    return load_private_key(k, b"gate-pass"), pub


def _signed_fixture(root, key, **kw):
    b = make_fixture_bundle(root, **kw)
    sign_index(b, (b / "index.json").read_bytes(), key)
    return b


def _plan(bundle, current, pub):
    out = open(os.devnull, "w")
    return make_plan(UpgradeOptions(INVENTORY, bundle, pub, current=current, plan_only=True), Console(file=out, width=300))


def test_upgrade_gates_the_verified_copy_like_install(tmp_path, keys, monkeypatch):
    key, pub = keys
    home = tmp_path / "home"
    monkeypatch.setenv("MEDAI_HOME", str(home))
    current = version_bundle(tmp_path / "v1", key, "v1.33.5+k3s1", "1.9.2", b"w", False)
    good = _signed_fixture(tmp_path / "v2", key)
    plan = _plan(good, current.root, pub)
    # the plan runs from the private checked copy, not the directory it was given
    assert plan.bundle.parent == home / "bundles" and plan.bundle != good
    from installer.deploy.inventory import load_inventory
    from installer.platform.render import render_site

    assert len(render_site(load_inventory(INVENTORY), plan.bundle).releases) == 3  # the copy is what passes

    bad = _signed_fixture(tmp_path / "v2bad", key, omit=(MISSING,))
    with pytest.raises(MedaiError) as e:
        _plan(bad, current.root, pub)
    assert MISSING in str(e.value)
    assert not (home / "runs").exists() or not any(
        "upgrade" in p.name for p in (home / "runs").iterdir())  # refused before any upgrade run began
