"""Extra vendor repositories (spec.osPackages[].repositories): a real signed apt repository made here
(apt-ftparchive + a throwaway gpg key), served on 127.0.0.1; the build checks its signature against the pinned
fingerprint before apt resolves anything, and the packages join the bundle repository for the gpu group only."""
from __future__ import annotations

import json

import pytest

from installer.bundle.layout import BundleLayout
from installer.bundle.manifest import OsPackages, OsRepository
from installer.collect import ospkgs, vendor_repos
from installer.core.errors import SourceError
from tests.support.apt_repo import ThrowawayKey, make_signed_apt_repo, make_signed_repomd
from tests.support.os_repo import TEST_CACHE
from tests.support.servers import run_file_server

pytestmark = pytest.mark.loopback


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    d = tmp_path_factory.mktemp("keys")
    pair = ThrowawayKey(d / "vendor", "vendor <v@medai.invalid>"), ThrowawayKey(d / "other", "other <o@medai.invalid>")
    yield pair
    for key in pair:
        key.close()


@pytest.fixture
def served(tmp_path, keys):
    repo = make_signed_apt_repo(tmp_path, keys[0])
    with run_file_server(repo.root) as srv:
        yield repo, srv


def _entry(repo, srv, fingerprint=None, **kw) -> OsRepository:
    return OsRepository(name="vendor", url=srv.url, suite=repo.suite, components=["main"],
                        key=f"{srv.url}/vendor-key.asc", fingerprint=fingerprint or repo.fingerprint,
                        packages=[repo.package], **kw)


def test_right_fingerprint_is_accepted_and_the_keyring_holds_only_that_key(served, tmp_path):
    repo, srv = served
    checked = vendor_repos.check_apt_repository("debian-12", _entry(repo, srv), tmp_path / "kr")
    assert checked.index_url == f"{srv.url}/dists/stable/InRelease"
    shown = vendor_repos._gpg(str(tmp_path), "--with-colons", "--show-keys", str(checked.keyring), what="t")
    assert vendor_repos.primary_fingerprints(shown) == [repo.fingerprint]
    stanza = vendor_repos.apt_source_stanza(checked, "amd64")
    assert f"Signed-By: {checked.keyring}" in stanza and "Components: main" in stanza


def test_release_plus_detached_signature_when_no_inrelease(served, tmp_path):
    repo, srv = served
    (repo.root / "dists/stable/InRelease").unlink()
    checked = vendor_repos.check_apt_repository("debian-12", _entry(repo, srv), tmp_path / "kr")
    assert checked.index_url.endswith("/dists/stable/Release")


def _refused_build(tmp_path, spec) -> str:
    layout = BundleLayout.at(tmp_path / "bundle")
    cache = tmp_path / "cache"
    with pytest.raises(SourceError) as e:
        ospkgs.collect_os_packages(layout, spec, cache_dir=cache)
    # refused before apt was set up at all, and nothing half-written into the bundle
    assert not (cache / "debian-12-amd64/etc/apt/sources.list.d/target.sources").exists()
    assert not (layout.os / "debian-12").exists()
    assert "\n" not in str(e.value)
    return str(e.value)


def test_wrong_fingerprint_is_refused_before_resolving(served, tmp_path, keys):
    repo, srv = served
    spec = OsPackages(release="debian-12", packages=["chrony"], repositories=[_entry(repo, srv, keys[1].fingerprint)])
    msg = _refused_build(tmp_path, spec)
    assert "spec.osPackages[debian-12].repositories[vendor].fingerprint" in msg and keys[1].fingerprint in msg


def test_tampered_release_is_refused_before_resolving(served, tmp_path):
    repo, srv = served
    inrel = repo.root / "dists/stable/InRelease"
    inrel.write_text(inrel.read_text().replace("Origin: medai-test-vendor", "Origin: medai-test-vendoR"))
    msg = _refused_build(tmp_path, OsPackages(release="debian-12", packages=["chrony"], repositories=[_entry(repo, srv)]))
    assert "InRelease: signature check failed" in msg and "repositories[vendor]" in msg


def test_repository_signed_by_another_key_is_refused(served, tmp_path, keys):
    repo, srv = served
    dist = repo.root / "dists/stable"
    keys[1].clearsign(dist / "Release", dist / "InRelease")  # a valid signature, by the wrong key
    with pytest.raises(SourceError, match="NO_PUBKEY|signature check failed"):
        vendor_repos.check_apt_repository("debian-12", _entry(repo, srv), tmp_path / "kr")


def test_dnf_repomd_signature_checked_against_the_pin(tmp_path, keys):
    base = make_signed_repomd(tmp_path, keys[0])
    with run_file_server(base) as srv:
        entry = OsRepository(name="nvidia-container-toolkit", baseurl=srv.url, key=f"{srv.url}/vendor-key.asc",
                             fingerprint=keys[0].fingerprint, packages=["nvidia-container-toolkit"])
        checked = vendor_repos.check_dnf_repository("rocky-9", entry, tmp_path / "kr")
        cmds = ospkgs.dnf_commands(OsPackages(release="rocky-9", packages=["chrony"], repositories=[entry]),
                                   tmp_path / "dest", tmp_path / "root", [checked])
        assert f"--setopt=nvidia-container-toolkit.gpgkey=file://{checked.keyring}" in cmds[0]
        assert "nvidia-container-toolkit" in cmds[0]
        md = base / "repodata/repomd.xml"
        md.write_text(md.read_text().replace("<revision>1", "<revision>2"))
        with pytest.raises(SourceError, match=r"repositories\[nvidia-container-toolkit\].*signature check failed"):
            vendor_repos.check_dnf_repository("rocky-9", entry, tmp_path / "kr")


def test_manifest_rejects_short_fingerprints_and_all_group():
    with pytest.raises(ValueError, match="40 hex"):
        OsRepository(name="v", url="http://x", suite="s", key="http://x/k", fingerprint="ABCD", packages=["p"])
    with pytest.raises(ValueError, match="never serves all"):
        OsRepository(name="v", url="http://x", suite="s", key="http://x/k", fingerprint="A" * 40, packages=["p"],
                     groups=["all"])


def test_packages_go_to_the_gpu_group_only():
    spec = OsPackages(release="debian-12", packages=["chrony"], groups={"gpu": ["nvidia-driver"]},
                      repositories=[OsRepository(name="v", url="http://x", suite="s", key="http://x/k",
                                                 fingerprint="A" * 40, packages=["nvidia-container-toolkit"])])
    assert ospkgs.package_groups(spec) == {"gpu": ["nvidia-driver", "nvidia-container-toolkit"]}
    assert ospkgs.requested_packages(spec) == ["chrony", "nvidia-driver", "nvidia-container-toolkit"]


@pytest.mark.network
@pytest.mark.xdist_group("serial")  # the OS package cache the lab's bundles fill (apt runs there unlocked)
def test_build_with_a_vendor_repository_lands_in_the_gpu_group(served, tmp_path):
    """Debian's archive (network) for the base packages plus the loopback vendor repository."""
    repo, srv = served
    layout = BundleLayout.at(tmp_path / "bundle")
    spec = OsPackages(release="debian-12", packages=["chrony"], repositories=[_entry(repo, srv)])
    out = ospkgs.collect_os_packages(layout, spec, cache_dir=TEST_CACHE / "ospkgs")
    d = layout.os / "debian-12"
    assert list((d / "pool").glob(f"{repo.package}_1.0_amd64.deb"))
    pk = json.loads((d / "packages.json").read_text())
    assert pk["packages"] == ["chrony"] and pk["groups"] == {"gpu": [repo.package]}
    assert pk["repositories"][0]["fingerprint"] == repo.fingerprint
    assert f"{repo.package}=1.0" in out.artifact.meta["closure"]
    # the bundle's repository is signed by the build's own key, not the vendor's
    assert (d / "medai-repo.fingerprint").read_text().strip() != repo.fingerprint


def test_flat_repository_paths_and_platform_manifest_entry():
    from installer.bundle.manifest import load_manifest

    m = load_manifest(ospkgs.Path(__file__).resolve().parents[2] / "bundles/platform.yaml")
    for osp in m.spec.osPackages:
        (r,) = osp.repositories
        assert r.name == "nvidia-container-toolkit" and r.groups == ["gpu"] and len(r.fingerprint) == 40
        assert vendor_repos.apt_index_base(r) == "https://nvidia.github.io/libnvidia-container/stable/deb/amd64/"
        assert ospkgs.package_groups(osp)["gpu"][-1] == "nvidia-container-toolkit"
        assert "nvidia-container-toolkit" not in osp.packages


def test_flat_repository_is_checked_at_its_root(served, tmp_path):
    repo, srv = served
    dist = repo.root / "dists/stable"
    (repo.root / "InRelease").write_bytes((dist / "InRelease").read_bytes())
    entry = OsRepository(name="vendor", url=srv.url, suite="/", key=f"{srv.url}/vendor-key.asc",
                         fingerprint=repo.fingerprint, packages=[repo.package])
    checked = vendor_repos.check_apt_repository("debian-12", entry, tmp_path / "kr")
    assert checked.index_url == f"{srv.url}/InRelease"
    assert "Components" not in vendor_repos.apt_source_stanza(checked, "amd64")
