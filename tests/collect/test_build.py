"""`medai bundle build` end to end on loopback: a real registry (seeded with skopeo), a helm repository, files and
a model over HTTP. Then the lockfile, --locked drift, the no-change rebuild, verify and inspect, and every bad
input the issue lists: one line, non-zero exit, no index.json."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from installer.bundle.inspect import inspect_bundle
from installer.bundle.lock import Lock
from installer.bundle.verify import verify_files
from installer.collect.build import BuildOptions, build_bundle
from installer.core.errors import LockDriftError, ManifestError, MedaiError, RegistryError, SourceError
from installer.oci.registry import RegistryClient
from tests.support.sources import seeded_chart_values, write_manifest

pytestmark = pytest.mark.loopback
ROOT = Path(__file__).resolve().parents[2]


def _copy_image(src: str, dest: str) -> None:
    subprocess.run(["skopeo", "copy", "--all", "--src-tls-verify=false", "--dest-tls-verify=false",
                    f"docker://{src}", f"docker://{dest}"], check=True, capture_output=True)


@pytest.fixture(scope="module")
def extra_image(seeded_registry):
    """An image only `extraImages` names (no template shows it)."""
    ref = f"{seeded_registry.host}/demo/operand:1.0"
    _copy_image(seeded_registry.tool, ref)
    return ref


def _manifest(path: Path, demo_sources, seeded, extra_image, **kw) -> Path:
    kw.setdefault("images", [seeded.tool])
    kw.setdefault("chart_values", seeded_chart_values(seeded))
    kw.setdefault("extra_images", [extra_image])
    return write_manifest(path, demo_sources, **kw)


def _build(manifest: Path, out: Path, **kw):
    # one attempt per request: the unreachable-registry case must not sit through the production backoff
    return build_bundle(BuildOptions(manifest=manifest, out=out, with_tools=False,
                                     registry_client=RegistryClient(retries=1), **kw))


@pytest.fixture(scope="module")
def built(tmp_path_factory, demo_sources, seeded_registry, extra_image):
    work = tmp_path_factory.mktemp("build")
    manifest = _manifest(work / "site.yaml", demo_sources, seeded_registry, extra_image)
    summary = _build(manifest, work / "bundle")
    return work, manifest, summary


def test_bundle_holds_every_artifact(built, seeded_registry, extra_image):
    work, _, summary = built
    counts = dict(summary.counts)
    assert counts.pop("sbom", 6) == 6  # one per image (multi is reduced to amd64) + the bundle SBOM
    assert counts == {"chart": 1, "file": 2, "image": 5, "meta": 2, "model": 1}
    assert summary.fetched_bytes > 0
    index = json.loads((work / "bundle" / "index.json").read_bytes())
    images = {a["ref"]: a for a in index["artifacts"] if a["kind"] == "image"}
    s = seeded_registry
    # which chart needs which image: templates (Deployment+init, StatefulSet, DaemonSet, hook Job, CronJob, custom
    # kind), extraImages, and the listed image no chart uses
    assert images[s.base]["neededBy"] == ["demo"]
    assert images[s.app]["neededBy"] == ["demo"]
    assert images[s.multi]["neededBy"] == ["demo"]
    assert images[extra_image]["neededBy"] == ["demo"]
    assert images[s.tool]["neededBy"] == []
    assert images[s.multi]["digest"] == s.multi_index_digest  # the index users pull by, unchanged
    # the platform manifest kept under it, which the site render pins (a site registry cannot serve the reduced index)
    [(platform, amd64)] = images[s.multi]["meta"]["platformDigests"].items()
    assert platform == "linux/amd64" and amd64 != s.multi_index_digest
    assert f"oci/blobs/sha256/{amd64.removeprefix('sha256:')}" in images[s.multi]["paths"]
    assert images[s.base]["meta"]["platformDigests"] == {"linux/amd64": images[s.base]["digest"]}
    chart = next(a for a in index["artifacts"] if a["kind"] == "chart")
    assert chart["meta"]["images"] == sorted([s.base, s.app, s.multi, extra_image])
    model = next(a for a in index["artifacts"] if a["kind"] == "model")
    assert set(model["meta"]["files"]) == {"config.json", "weights.safetensors", "tokenizer/vocab.txt"}
    assert not (work / "bundle" / ".tmp").exists()


def test_bundle_verifies(built):
    work, _, _ = built
    res = verify_files(work / "bundle")
    assert res.ok, [str(p) for p in res.problems]
    assert res.bytes_hashed > 1_000_000


def test_lockfile_is_written_beside_the_manifest_and_into_the_bundle(built, seeded_registry, demo_sources):
    work, _, _ = built
    lock_file = work / "site.lock.yaml"
    assert lock_file.read_text() == (work / "bundle" / "lock.yaml").read_text()
    lock = Lock.load(lock_file)
    assert lock.images[seeded_registry.multi] == seeded_registry.multi_index_digest
    assert lock.charts == {"demo@1.0.0": demo_sources.chart_sha256}
    assert lock.files == {n: sha for n, (_, sha) in demo_sources.files.items()}
    assert lock.models["tiny"]["files"] == demo_sources.model_files


def test_inspect_reports_images_charts_files_models(built, seeded_registry):
    work, _, _ = built
    info = inspect_bundle(work / "bundle")
    by_ref = {i["ref"]: i for i in info["images"]}
    assert by_ref[seeded_registry.app]["neededBy"] == ["demo"] and by_ref[seeded_registry.app]["size"] > 0
    assert [c["name"] for c in info["charts"]] == ["demo"]
    assert sorted(f["name"] for f in info["files"]) == ["install.sh", "payload.bin"]
    assert info["models"][0]["files"] == 3
    assert info["totalSize"] == sum(f["size"] for f in json.loads((work / "bundle" / "index.json").read_bytes())["files"])


def test_no_change_rebuild_fetches_nothing(built):
    work, manifest, first = built
    before = json.loads((work / "bundle" / "index.json").read_bytes())
    sbom = work / "bundle" / "sbom" / "bundle.cdx.json"
    sbom_mtime = sbom.stat().st_mtime_ns if sbom.exists() else None
    again = _build(manifest, work / "bundle")
    if sbom_mtime is not None:
        assert sbom.stat().st_mtime_ns == sbom_mtime  # unchanged inputs: SBOMs reused, not re-catalogued
    after = json.loads((work / "bundle" / "index.json").read_bytes())
    assert again.fetched_bytes == 0 and again.reused_bytes > 0
    assert after["files"] == before["files"] and after["artifacts"] == before["artifacts"]
    locked = _build(manifest, work / "bundle", locked=True)
    assert locked.fetched_bytes == 0


def test_locked_build_refuses_a_moved_tag(built, seeded_registry, tmp_path, demo_sources, extra_image):
    work, _, _ = built
    moving = f"{seeded_registry.host}/demo/moving:1.0"
    _copy_image(seeded_registry.base, moving)
    manifest = _manifest(tmp_path / "m.yaml", demo_sources, seeded_registry, extra_image, images=[moving])
    _build(manifest, tmp_path / "b")
    lock_before = (tmp_path / "m.lock.yaml").read_bytes()
    _copy_image(seeded_registry.app, moving)  # upstream re-tags: same tag, other image
    with pytest.raises(LockDriftError) as e:
        _build(manifest, tmp_path / "b", locked=True)
    assert moving in str(e.value) and "lock pins" in str(e.value)
    assert not (tmp_path / "b" / "index.json").exists()
    assert (tmp_path / "m.lock.yaml").read_bytes() == lock_before  # --locked writes nothing


def test_locked_build_refuses_a_repinned_file(built, tmp_path):
    work, manifest, _ = built
    doc = yaml.safe_load(manifest.read_text())
    doc["spec"]["files"][0]["sha256"] = "f" * 64
    m2 = tmp_path / "site.yaml"
    m2.write_text(yaml.safe_dump(doc))
    shutil.copy(work / "site.lock.yaml", tmp_path / "site.lock.yaml")
    with pytest.raises(LockDriftError, match=r"file install\.sh: manifest pins sha256 f{64}, the lock has \w{64}"):
        _build(m2, tmp_path / "b", locked=True)
    assert not (tmp_path / "b").exists()  # refused before anything was created


def test_locked_without_a_lock(tmp_path, demo_sources, seeded_registry, extra_image):
    m = _manifest(tmp_path / "m.yaml", demo_sources, seeded_registry, extra_image)
    with pytest.raises(LockDriftError, match=r"m\.lock\.yaml: --locked needs the lock file"):
        _build(m, tmp_path / "b", locked=True)


# ------------------------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize("case", ["unreachable", "tag", "file_sha", "chart", "chart_image"])
def test_bad_input_leaves_no_finished_bundle(case, tmp_path, demo_sources, seeded_registry, extra_image):
    s = seeded_registry
    kw: dict = {}
    expect: tuple[type, str]
    if case == "unreachable":
        kw["images"] = ["127.0.0.1:9/demo/app:1.0"]
        expect = (RegistryError, "127.0.0.1:9/demo/app:1.0")
    elif case == "tag":
        kw["images"] = [f"{s.host}/demo/app:no-such-tag"]
        expect = (RegistryError, f"{s.host}/demo/app:no-such-tag")
    elif case == "file_sha":
        kw["extra_spec"] = {"files": [{"name": "install.sh", "url": demo_sources.files["install.sh"][0],
                                       "sha256": "0" * 64}]}
        expect = (SourceError, "file install.sh: sha256 mismatch")
    elif case == "chart":
        kw["extra_spec"] = {"charts": [{"name": "demo", "version": "7.7.7", "repo": demo_sources.chart_repo}]}
        expect = (SourceError, "chart demo 7.7.7")
    else:
        values = seeded_chart_values(s)
        values["images"]["cron"] = f"{s.host}/demo/vanished:1.0"
        kw["chart_values"] = values
        expect = (RegistryError, f"{s.host}/demo/vanished:1.0")
    manifest = _manifest(tmp_path / "m.yaml", demo_sources, s, extra_image, **kw)
    with pytest.raises(expect[0]) as e:
        _build(manifest, tmp_path / "b")
    msg = str(e.value)
    assert expect[1] in msg and "\n" not in msg, msg
    if case == "chart_image":
        assert "needed by chart demo" in msg
    assert not (tmp_path / "b" / "index.json").exists()
    assert not (tmp_path / "m.lock.yaml").exists()


def test_failed_rebuild_unmarks_a_finished_bundle(built, tmp_path, demo_sources, seeded_registry, extra_image):
    work, _, _ = built
    shutil.copytree(work / "bundle", tmp_path / "b")
    assert (tmp_path / "b" / "index.json").exists()
    manifest = _manifest(tmp_path / "m.yaml", demo_sources, seeded_registry, extra_image,
                         images=[f"{seeded_registry.host}/demo/app:gone"])
    with pytest.raises(RegistryError):
        _build(manifest, tmp_path / "b")
    assert not (tmp_path / "b" / "index.json").exists()


def test_out_dir_with_foreign_files_is_refused(tmp_path, demo_sources, seeded_registry, extra_image):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "thesis.docx").write_text("precious")
    m = _manifest(tmp_path / "m.yaml", demo_sources, seeded_registry, extra_image)
    with pytest.raises(MedaiError, match="not empty and not a medai bundle"):
        _build(m, tmp_path / "b")
    assert (tmp_path / "b" / "thesis.docx").read_text() == "precious"


def test_dropped_entries_are_pruned(built, tmp_path, demo_sources, seeded_registry, extra_image):
    work, _, _ = built
    shutil.copytree(work / "bundle", tmp_path / "b")
    m = _manifest(tmp_path / "m.yaml", demo_sources, seeded_registry, extra_image, files=["install.sh"],
                  with_model=False, with_chart=False)
    summary = _build(m, tmp_path / "b")
    counts = {k: v for k, v in summary.counts.items() if k != "sbom"}
    assert counts == {"file": 1, "image": 1, "meta": 2}
    assert not (tmp_path / "b" / "files" / "payload.bin").exists() and not (tmp_path / "b" / "models").exists()
    assert verify_files(tmp_path / "b").ok  # no leftover blob or file outside the index


# ------------------------------------------------------------------------------------------------ the CLI


def _medai(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "installer.cli.main", *args], cwd=cwd, capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "250"})


def test_cli_build_json_and_inspect(tmp_path, demo_sources, seeded_registry, extra_image):
    m = _manifest(tmp_path / "m.yaml", demo_sources, seeded_registry, extra_image)
    r = _medai("bundle", "build", str(m), "--out", str(tmp_path / "b"), "--no-tools", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["counts"]["image"] == 5 and summary["signed"] is False
    r = _medai("bundle", "inspect", str(tmp_path / "b"), cwd=tmp_path)  # --json: inspect_bundle, tested above
    assert r.returncode == 0 and "needed by" in r.stdout and seeded_registry.multi in r.stdout


def test_cli_unknown_manifest_field_is_one_line(tmp_path, demo_sources, seeded_registry, extra_image):
    m = _manifest(tmp_path / "m.yaml", demo_sources, seeded_registry, extra_image)
    doc = yaml.safe_load(m.read_text())
    doc["spec"]["images"][0]["tag"] = "oops"
    m.write_text(yaml.safe_dump(doc))
    r = _medai("bundle", "build", str(m), "--out", str(tmp_path / "b"), "--no-tools", cwd=tmp_path)
    assert r.returncode == 2
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "spec.images[0].tag: unknown field" in lines[0], r.stderr
    assert not (tmp_path / "b").exists()


# ------------------------------------------------------------------------------------------------ signing at build


def test_signed_build_verifies_and_carries_no_secret(built, tmp_path, monkeypatch):
    from installer.trust.keys import generate_keypair
    from installer.trust.verify import verify_bundle

    work, manifest, _ = built
    password = "build-key-s3cret-pass"
    key, pub = generate_keypair(tmp_path / "site", password.encode())
    monkeypatch.setenv("MEDAI_KEY_PASSWORD", password)
    shutil.copytree(work / "bundle", tmp_path / "b")
    summary = _build(manifest, tmp_path / "b", sign_key=key, lock=tmp_path / "lock.yaml")
    assert summary.signed and (tmp_path / "b" / "index.json.sig").is_file()
    res = verify_bundle(tmp_path / "b", key=pub, write_report=False)
    assert res.ok, res.to_text() if hasattr(res, "to_text") else res
    secret = key.read_bytes()
    for p in (tmp_path / "b").rglob("*"):
        if p.is_file():
            data = p.read_bytes()
            assert secret not in data and password.encode() not in data, p


def test_missing_sign_key_is_refused_before_building(built, tmp_path):
    _, manifest, _ = built
    with pytest.raises(MedaiError, match=r"nope\.key: signing key not found"):
        _build(manifest, tmp_path / "b", sign_key=tmp_path / "nope.key")
    assert not (tmp_path / "b").exists()


# ------------------------------------------------------------------------------------------------ kill and resume


class _SlowHandler(__import__("http.server").server.SimpleHTTPRequestHandler):
    """Serves files at ~2 MiB/s (with Range), so a build can be killed in the middle of one."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def do_GET(self):
        import time

        path = Path(self.translate_path(self.path))
        data = path.read_bytes()
        start = 0
        rng = self.headers.get("Range")
        if rng:
            start = int(rng.removeprefix("bytes=").split("-")[0])
        body = data[start:]
        self.send_response(206 if rng else 200)
        if rng:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        for i in range(0, len(body), 64 * 1024):
            self.wfile.write(body[i:i + 64 * 1024])
            time.sleep(0.03)


def test_killed_build_resumes_and_verifies(tmp_path):
    import signal
    import threading
    import time
    from functools import partial
    from http.server import ThreadingHTTPServer

    from installer.core.hashing import sha256_bytes
    from installer.core.progress import Progress

    www = tmp_path / "www"
    www.mkdir()
    data = os.urandom(3 * 1024 * 1024)
    (www / "big.bin").write_bytes(data)
    srv = ThreadingHTTPServer(("127.0.0.1", 0), partial(_SlowHandler, directory=str(www)))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        doc = {"apiVersion": "medai/v1", "kind": "Bundle", "metadata": {"name": "kill"}, "spec": {"files": [
            {"name": "big.bin", "url": f"http://127.0.0.1:{srv.server_address[1]}/big.bin", "sha256": sha256_bytes(data)}]}}
        manifest = tmp_path / "m.yaml"
        manifest.write_text(yaml.safe_dump(doc))
        out = tmp_path / "b"
        code = ("from installer.collect.build import BuildOptions, build_bundle; "
                f"build_bundle(BuildOptions(manifest={str(manifest)!r}, out={str(out)!r}, with_tools=False))")
        proc = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(ROOT)},
                                stderr=open(tmp_path / "build.log", "wb"))
        part = out / ".tmp" / "files" / "big.bin.part"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (part.exists() and part.stat().st_size > 512 * 1024):
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert part.exists(), (tmp_path / "build.log").read_text()[-2000:]
        have = part.stat().st_size
        assert 0 < have < len(data) and not (out / "index.json").exists()
        progress = Progress()
        build_bundle(BuildOptions(manifest=manifest, out=out, with_tools=False, progress=progress))
        assert progress.counters.fetched_bytes <= len(data) - have  # only the rest was downloaded
        assert (out / "files" / "big.bin").read_bytes() == data
        assert verify_files(out).ok
    finally:
        srv.shutdown()
        srv.server_close()


def test_bad_platform_option(tmp_path, demo_sources, seeded_registry, extra_image):
    m = _manifest(tmp_path / "m.yaml", demo_sources, seeded_registry, extra_image)
    with pytest.raises(ManifestError, match=r"--platform: 'linux/z80' is not an OS/ARCH platform"):
        _build(m, tmp_path / "b", platforms=["linux/z80"])
