"""Differential bundles built for real on loopback (registry, chart repo, files): v1, then v2 with --base v1."""
from __future__ import annotations

import hashlib
import json
import shutil

import pytest

from installer.collect.build import BuildOptions, build_bundle
from installer.core.errors import InstallError
from installer.deploy.base_check import refuse_wrong_base
from installer.deploy.state import new_run
from installer.oci.registry import RegistryClient
from installer.trust.differential import verify_union
from installer.trust.keys import generate_keypair
from tests.support.sources import seeded_chart_values, write_manifest

pytestmark = pytest.mark.loopback
PASSWORD = "diff-key-pass"


@pytest.fixture(scope="module")
def versions(tmp_path_factory, demo_sources, seeded_registry):
    work = tmp_path_factory.mktemp("diff")
    key, pub = generate_keypair(work / "site", PASSWORD.encode())
    mp = pytest.MonkeyPatch()
    mp.setenv("MEDAI_KEY_PASSWORD", PASSWORD)
    names = sorted(demo_sources.files)
    common = dict(images=[seeded_registry.tool], chart_values=seeded_chart_values(seeded_registry))
    m1 = write_manifest(work / "v1.yaml", demo_sources, files=names[:1], **common)
    m2 = write_manifest(work / "v2.yaml", demo_sources, files=names, **common)
    opts = dict(with_tools=False, registry_client=RegistryClient(retries=1), sign_key=key)
    build_bundle(BuildOptions(manifest=m1, out=work / "v1", lock=work / "v1.lock", **opts))
    shutil.copytree(work / "v1", work / "v2")  # the build reuses what is there; --base then drops what v1 holds
    mp.setenv("MEDAI_KEY_PASSWORD", PASSWORD)  # the build takes the password out of the environment once read
    s2 = build_bundle(BuildOptions(manifest=m2, out=work / "v2", lock=work / "v2.lock", base=work / "v1" / "index.json", **opts))
    mp.undo()
    return work, pub, s2, names


def test_differential_carries_only_what_the_base_lacks(versions, demo_sources):
    work, _pub, _s2, names = versions
    v1 = json.loads((work / "v1/index.json").read_bytes())
    v2 = json.loads((work / "v2/index.json").read_bytes())
    assert v2["base"]["indexSha256"] == hashlib.sha256((work / "v1/index.json").read_bytes()).hexdigest()
    carried = {f["path"] for f in v2["files"]}
    from_base = {f["path"] for f in v2["fromBase"]}
    assert carried and from_base and not carried & from_base
    assert all(not (work / "v2" / p).exists() for p in from_base)
    # the new file is carried; the model and every image layer unchanged since v1 are not
    new_file = next(a for a in v2["artifacts"] if a["kind"] == "file" and a["name"] == names[-1])
    assert new_file["path"] in carried
    model = next(a for a in v2["artifacts"] if a["kind"] == "model")
    assert set(model["paths"]) <= from_base
    v1_files = {f["path"]: f["sha256"] for f in v1["files"]}
    assert all(v1_files.get(f["path"]) != f["sha256"] for f in v2["files"])


def test_verify_base_checks_the_union(versions):
    work, pub, _s2, _ = versions
    problems, summary = verify_union(work / "v2", work / "v1", pub)
    assert problems == [] and summary["fromBase"] > 0


def test_verify_base_refuses_the_wrong_base_and_a_damaged_one(versions, tmp_path):
    work, pub, _s2, _ = versions
    problems, _ = verify_union(work / "v2", work / "v2", pub)
    assert any("built on index sha256" in p for p in problems)
    shutil.copytree(work / "v1", tmp_path / "v1")
    model_file = next(p for p in (tmp_path / "v1/models").rglob("*") if p.is_file())
    model_file.write_bytes(b"tampered")
    problems, _ = verify_union(work / "v2", tmp_path / "v1", pub)
    assert any("base: altered" in p for p in problems), problems


def test_install_refuses_a_differential_on_another_base_naming_both_digests(versions, tmp_path):
    work, _pub, _s2, _ = versions
    inv = tmp_path / "site.yml"
    inv.write_text("all: {}\n")
    v2 = json.loads((work / "v2/index.json").read_bytes())
    with pytest.raises(InstallError, match="no successful install"):
        refuse_wrong_base(v2, work / "v2", inv, home=tmp_path)
    # the cluster has some other bundle installed (a real run record, as `medai install` writes it)
    other = tmp_path / "other-index.json"
    other.write_text('{"kind": "BundleIndex"}')
    rec = new_run("install", inv, other, home=tmp_path)
    rec.finish("successful")
    have = hashlib.sha256(other.read_bytes()).hexdigest()
    with pytest.raises(InstallError) as e:
        refuse_wrong_base(v2, work / "v2", inv, home=tmp_path)
    assert v2["base"]["indexSha256"] in str(e.value) and have in str(e.value)
    rec = new_run("install", inv, work / "v1/index.json", home=tmp_path)
    rec.finish("successful")
    assert refuse_wrong_base(v2, work / "v2", inv, home=tmp_path) == v2["base"]["indexSha256"]
