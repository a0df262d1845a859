"""A no-change `medai bundle build` is answered by the make-like up-to-date check
(installer/collect/uptodate.py) before typer, httpx or pydantic are imported, and every change the full build
would see (inputs, outputs, medai itself, a moved tag) still leads to the full build.

Every build here is the real CLI in a subprocess over real loopback sources (docker-registry, the Helm repository
and HTTP file server of demo_sources); the stamp lives in the test's own MEDAI_CACHE."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from installer.bundle.manifest import parse_manifest
from installer.collect import uptodate
from installer.trust.verify import verify_bundle
from tests.support.images import seed, skopeo_push
from tests.support.servers import run_registry
from tests.support.sources import seeded_chart_values, write_manifest

pytestmark = pytest.mark.loopback

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "uptodate-test-password"

# Runs `medai ARGS` in-process behind an audit hook: which files it opened and which heavy modules it imported.
PROBE = """
import json, sys
opened = []
def hook(event, args):
    if event == "open" and isinstance(args[0], str):
        opened.append(args[0])
sys.addaudithook(hook)
out, args = sys.argv[1], sys.argv[2:]
sys.argv = ["medai", *args]
from installer.cli.main import main
code = 0
try:
    main()
except SystemExit as e:
    code = e.code or 0
mods = sorted(m for m in ("typer", "click", "rich", "httpx", "pydantic", "yaml", "installer.bundle", "installer.trust")
              if m in sys.modules)
open(out, "w").write(json.dumps({"code": code, "opened": opened, "modules": mods}))
"""


class Site:
    """A working directory with a manifest, a signing key and its own stamp cache; runs the CLI there."""

    def __init__(self, work: Path, manifest: Path, key: Path):
        self.work, self.manifest, self.key = work, manifest, key
        self.out = work / "bundle"
        self.lock = manifest.with_name(manifest.stem + ".lock.yaml")
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "250", "MEDAI_KEY_PASSWORD": PASSWORD,
                    "MEDAI_CACHE": str(work / "cache")}

    def args(self, *extra: str, out: Path | None = None) -> list[str]:
        return ["bundle", "build", str(self.manifest), "--out", str(out or self.out), "--no-tools",
                "--sign-key", str(self.key), *extra]

    def build(self, *extra: str, out: Path | None = None, env: dict | None = None) -> dict:
        """One `medai bundle build ... --json`; its summary (upToDate True when the check answered)."""
        r = subprocess.run([sys.executable, "-m", "installer.cli.main", *self.args(*extra, "--json", out=out)],
                           cwd=self.work, capture_output=True, text=True, env=env or self.env, timeout=600)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    def probe(self, *extra: str) -> tuple[dict, str]:
        res = self.work / "probe.json"
        r = subprocess.run([sys.executable, "-c", PROBE, str(res), *self.args(*extra)], cwd=self.work,
                           capture_output=True, text=True, env=self.env, timeout=600)
        assert r.returncode == 0, r.stderr
        return json.loads(res.read_text()), r.stdout

    def stamps(self) -> list[Path]:
        d = self.work / "cache" / "build-stamps"
        return sorted(d.iterdir()) if d.is_dir() else []


def make_site(work: Path, demo_sources, images: list[str], chart_values: dict | None = None,
              files: list[str] | None = None) -> Site:
    from installer.trust.keys import generate_keypair

    work.mkdir(parents=True, exist_ok=True)
    model = work / "model"
    shutil.copytree(demo_sources.model_dir, model)
    (work / "keys").mkdir()
    key, _pub = generate_keypair(work / "keys" / "site", PASSWORD.encode())
    manifest = write_manifest(work / "site.yaml", demo_sources, images=images, chart_values=chart_values,
                              with_chart=chart_values is not None, files=files or [], with_model=False,
                              extra_spec={"models": [{"name": "tiny", "source": str(model)}]})
    return Site(work, manifest, key)


@pytest.fixture
def site(tmp_path, demo_sources, seeded_registry) -> Site:
    """Chart (rendered images), a listed image, a pinned file, a local model, signed; built once."""
    s = seeded_registry
    site = make_site(tmp_path / "site", demo_sources, [s.tool], seeded_chart_values(s), ["payload.bin"])
    first = site.build()
    assert "upToDate" not in first and first["fetched_bytes"] > 0 and first["signed"]
    return site


# ------------------------------------------------------------------------------------------------ up to date


def test_no_change_rebuild_is_up_to_date_opens_no_blob_and_imports_no_typer_or_pydantic(site):
    first = json.loads((site.work / "cache" / "build-stamps").iterdir().__next__().read_text())["summary"]
    bundle_before = sorted(p.relative_to(site.out).as_posix() for p in site.out.rglob("*"))
    probe, stdout = site.probe()
    assert probe["code"] == 0
    assert "bundle up to date" in stdout and "nothing changed since" in stdout and "fetched 0 B" in stdout, stdout
    assert f"index sha256 {first['index_sha256']}; signed" in stdout
    blobs = [p for p in probe["opened"] if p.startswith(str(site.out / "oci" / "blobs"))]
    assert blobs == []
    # tags are re-resolved (no --locked): the registry client comes in, the CLI's and the build's stack does not
    assert not {"typer", "click", "rich", "pydantic", "yaml", "installer.trust"} & set(probe["modules"]), probe["modules"]
    assert "httpx" in probe["modules"]
    # the bundle is untouched and still verifies; the stamp lives in the cache, not in the bundle
    assert sorted(p.relative_to(site.out).as_posix() for p in site.out.rglob("*")) == bundle_before
    assert verify_bundle(site.out, key=site.key.with_suffix(".pub"), write_report=False).ok
    assert len(site.stamps()) == 1 and site.out not in site.stamps()[0].parents


def test_up_to_date_json_summary_matches_the_full_builds(site):
    again = site.build()
    stamp = json.loads(site.stamps()[0].read_text())
    assert again["upToDate"] is True and again["upToDateSince"] == stamp["built"]
    assert again["fetched_bytes"] == 0 and again["reused_bytes"] == again["total_bytes"] > 0
    full = stamp["summary"]
    for k in ("bundle", "name", "version", "counts", "index_sha256", "signed", "lock", "total_bytes"):
        assert again[k] == full[k], k


def test_locked_rebuild_still_asks_for_tags_so_a_moved_tag_is_the_full_builds_lock_drift_error(tmp_path, demo_sources):
    with run_registry(tmp_path / "registry") as reg:
        imgs = seed(reg.host, tmp_path / "seed")
        site = make_site(tmp_path / "site", demo_sources, [imgs.base, imgs.app])
        assert "upToDate" not in site.build()  # writes the lock
        assert "upToDate" not in site.build("--locked")  # another command line: its own full build and stamp
        assert site.build("--locked")["upToDate"]
        skopeo_push(tmp_path / "seed", "tool", imgs.base)  # base:1.0 moves: the lock no longer holds
        r = subprocess.run([sys.executable, "-m", "installer.cli.main", *site.args(), "--locked"], cwd=site.work,
                           capture_output=True, text=True, env=site.env, timeout=600)
        assert r.returncode != 0 and "up to date" not in r.stdout, (r.stdout, r.stderr)
        assert "LockDriftError" in r.stderr or "lock pins" in r.stderr, r.stderr
        assert imgs.base in r.stderr
    # the registry is gone: the tags cannot be asked, so the full build runs (and fails naming the registry)
    r = subprocess.run([sys.executable, "-m", "installer.cli.main", *site.args(), "--locked"], cwd=site.work,
                       capture_output=True, text=True, env=site.env, timeout=600)
    assert r.returncode != 0 and "up to date" not in r.stdout and reg.host in r.stderr, (r.stdout, r.stderr)


def test_a_moved_tag_leads_to_a_full_build_that_picks_up_the_new_digest(tmp_path, demo_sources):
    with run_registry(tmp_path / "registry") as reg:
        imgs = seed(reg.host, tmp_path / "seed")
        site = make_site(tmp_path / "site", demo_sources, [imgs.base, imgs.app])
        site.build()
        assert site.build()["upToDate"]
        old = yaml.safe_load(site.lock.read_text())["images"][imgs.base]
        skopeo_push(tmp_path / "seed", "tool", imgs.base)  # base:1.0 now names the tool image
        moved = site.build()
        assert "upToDate" not in moved
        new = yaml.safe_load(site.lock.read_text())["images"][imgs.base]
        assert new != old
        index = json.loads((site.out / "index.json").read_text())
        assert {a["name"]: a["digest"] for a in index["artifacts"] if a["kind"] == "image"}[imgs.base] == new
        assert site.build()["upToDate"]  # and the new state is up to date in turn


def test_digest_pinned_images_need_no_registry(tmp_path, demo_sources):
    with run_registry(tmp_path / "registry") as reg:
        imgs = seed(reg.host, tmp_path / "seed")
        first = make_site(tmp_path / "first", demo_sources, [imgs.base])
        first.build()
        digest = yaml.safe_load(first.lock.read_text())["images"][imgs.base]
        site = make_site(tmp_path / "site", demo_sources, [f"{imgs.base}@{digest}"])
        site.build()
    probe, stdout = site.probe()
    assert probe["code"] == 0 and "bundle up to date" in stdout, stdout
    assert "httpx" not in probe["modules"]


# ------------------------------------------------------------------------------------------------ full builds


def _edit_manifest(site: Site) -> None:
    doc = yaml.safe_load(site.manifest.read_text())
    doc["metadata"]["version"] = "0.1.1"
    site.manifest.write_text(yaml.safe_dump(doc, sort_keys=False))


def _edit_lock(site: Site) -> None:
    site.lock.write_text(site.lock.read_text() + "# edited\n")


def _delete_bundle_file(site: Site) -> None:
    (site.out / "files" / "payload.bin").unlink()


def _resize_bundle_file(site: Site) -> None:
    with open(site.out / "files" / "payload.bin", "ab") as f:
        f.write(b"x")


def _extra_bundle_file(site: Site) -> None:
    (site.out / "files" / "stray.bin").write_bytes(b"not indexed")


def _edit_index(site: Site) -> None:
    doc = json.loads((site.out / "index.json").read_text())
    doc["version"] = "9.9.9"
    (site.out / "index.json").write_text(json.dumps(doc))


def _touch_model_source(site: Site) -> None:
    f = next(p for p in sorted((site.work / "model").rglob("*")) if p.is_file())
    f.write_bytes(f.read_bytes() + b"\n")


def _rewrite_signing_key(site: Site) -> None:
    site.key.write_bytes(site.key.read_bytes())


def _simulate_code_change(site: Site) -> None:
    p = site.stamps()[0]
    stamp = json.loads(p.read_text())
    stamp["code"]["tree"] = "0" * 64
    p.write_text(json.dumps(stamp))


def _simulate_version_change(site: Site) -> None:
    p = site.stamps()[0]
    stamp = json.loads(p.read_text())
    stamp["code"]["medai"] = [["medai-0.0.1.dist-info", 1, 1]]
    p.write_text(json.dumps(stamp))


def _corrupt_stamp(site: Site) -> None:
    site.stamps()[0].write_text("{not json")


CHANGES = {
    "manifest edited": _edit_manifest,
    "lock edited": _edit_lock,
    "bundle file deleted": _delete_bundle_file,
    "bundle file resized": _resize_bundle_file,
    "file not in the index added to the bundle": _extra_bundle_file,
    "index.json edited": _edit_index,
    "local model source changed": _touch_model_source,
    "signing key rewritten": _rewrite_signing_key,
    "medai code changed": _simulate_code_change,
    "medai version changed": _simulate_version_change,
    "stamp unreadable": _corrupt_stamp,
}


@pytest.mark.parametrize("change", CHANGES, ids=list(CHANGES))
def test_a_change_leads_to_a_full_build_that_leaves_a_verifying_bundle(site, change):
    CHANGES[change](site)
    again = site.build()
    assert "upToDate" not in again
    assert verify_bundle(site.out, key=site.key.with_suffix(".pub"), write_report=False).ok
    assert site.build()["upToDate"]  # the full build stamped the new state


def test_another_command_line_or_build_environment_is_a_full_build_but_the_key_password_is_not(site, tmp_path):
    # the key's password is never part of the key (nor stored): a wrong one is not even noticed, nothing is signed
    assert site.build(env={**site.env, "MEDAI_KEY_PASSWORD": PASSWORD + " "})["upToDate"]
    assert "upToDate" not in site.build(out=site.work / "other")  # another --out
    assert "upToDate" not in site.build("--platform", "linux/amd64")  # another option
    assert "upToDate" not in site.build(env={**site.env, "MEDAI_HOME": str(tmp_path / "home")})
    for p in site.stamps():
        assert PASSWORD not in p.read_text()


def test_an_out_symlink_pointed_elsewhere_is_a_full_build_into_the_new_target(tmp_path, demo_sources):
    site = make_site(tmp_path / "site", demo_sources, [])  # the local model only: no registry needed
    (site.work / "a").mkdir()
    (site.work / "b").mkdir()
    link = site.work / "out"
    link.symlink_to(site.work / "a")
    site.build(out=link)
    assert site.build(out=link)["upToDate"]
    link.unlink()
    link.symlink_to(site.work / "b")
    assert "upToDate" not in site.build(out=link)
    assert (site.work / "b" / "index.json").is_file()


def test_options_the_check_does_not_understand_go_to_the_full_cli(site):
    r = subprocess.run([sys.executable, "-m", "installer.cli.main", *site.args("--help")], cwd=site.work,
                       capture_output=True, text=True, env=site.env, timeout=120)
    assert r.returncode == 0 and "--locked" in r.stdout and "up to date" not in r.stdout


# ------------------------------------------------------------------------------------------------ units


def test_argument_parsing_reads_the_build_options_and_refuses_what_it_does_not_know():
    got = uptodate.parse_args(["m.yaml", "--out=b", "--locked", "--mirror", "quay.io=m/q", "--mirror=a=b", "--no-tools"])
    assert got is not None and got["manifest"] == "m.yaml" and got["out"] == "b" and got["locked"]
    assert got["mirror"] == ["quay.io=m/q", "a=b"] and got["tools"] is False
    for args in (["m.yaml", "--out", "b", "--help"], ["m.yaml", "--out", "b", "--bogus"], ["m.yaml", "--out"],
                 ["m.yaml", "n.yaml", "--out", "b"], ["m.yaml", "--out", "b", "--"], ["m.yaml"]):
        assert uptodate.parse_args(args) is None, args


def test_builds_the_check_cannot_vouch_for_get_no_stamp():
    opts = uptodate.parse_args(["m.yaml", "--out", "b", "--no-tools"])
    doc = {"apiVersion": "medai/v1", "kind": "Bundle", "metadata": {"name": "x"}, "spec": {}}
    assert uptodate.not_stampable(opts, parse_manifest(doc).spec) is None
    assert uptodate.not_stampable({**opts, "sigstore": True}, parse_manifest(doc).spec) == "--sigstore"
    assert uptodate.not_stampable({**opts, "base": "old"}, parse_manifest(doc).spec) == "--base"
    assert "tools" in uptodate.not_stampable({**opts, "tools": True}, parse_manifest(doc).spec)
    hf = {**doc, "spec": {"models": [{"name": "m", "source": "hf://org/repo@" + "a" * 40}]}}
    assert uptodate.not_stampable(opts, parse_manifest(hf).spec) == "Hugging Face models"
    keyed = {**doc, "spec": {"images": [{"ref": "quay.io/x/y:1.0", "key": "cosign.pub"}]}}
    assert uptodate.not_stampable(opts, parse_manifest(keyed).spec) == "upstream image signatures"
