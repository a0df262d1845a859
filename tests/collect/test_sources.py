"""Charts, files and models from real loopback servers: helm repo + OCI chart, Range-capable HTTP, a model mirror."""
from __future__ import annotations

import hashlib
import json
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import pytest

from installer.bundle.manifest import Chart, File, Model
from installer.collect.charts import fetch_chart
from installer.collect.files import fetch_file
from installer.collect.models import (
    fetch_model,
    hf_endpoint,
    parse_hf,
    remote_files_from_info,
    safe_relpath,
)
from installer.core.errors import LockDriftError, SourceError
from installer.core.hashing import sha256_bytes
from installer.core.progress import Progress
from tests.support.sources import make_chart

pytestmark = pytest.mark.loopback


# ------------------------------------------------------------------------------------------------ charts


def test_http_repo_chart_is_fetched_and_reused(demo_sources, tmp_path):
    chart = Chart(name="demo", version="1.0.0", repo=demo_sources.chart_repo)
    first = fetch_chart(chart, tmp_path / "charts", tmp_path / ".tmp")
    assert first.fetched and first.sha256 == demo_sources.chart_sha256
    assert first.path == tmp_path / "charts" / "demo-1.0.0.tgz"
    again = fetch_chart(chart, tmp_path / "charts", tmp_path / ".tmp", locked_sha256=first.sha256)
    assert not again.fetched and again.sha256 == first.sha256
    assert not list((tmp_path / ".tmp").iterdir())


def test_chart_not_found_names_chart_version_repo(demo_sources, tmp_path):
    chart = Chart(name="demo", version="9.9.9", repo=demo_sources.chart_repo)
    with pytest.raises(SourceError) as e:
        fetch_chart(chart, tmp_path / "charts", tmp_path / ".tmp")
    msg = str(e.value)
    assert msg.startswith(f"chart demo 9.9.9 from {demo_sources.chart_repo}: cannot fetch:") and "not found" in msg
    assert "\n" not in msg and not (tmp_path / "charts").exists()


def test_unreachable_chart_repo(tmp_path):
    chart = Chart(name="demo", version="1.0.0", repo="http://127.0.0.1:9/charts")
    with pytest.raises(SourceError, match=r"chart demo 1\.0\.0 from http://127\.0\.0\.1:9/charts: cannot fetch"):
        fetch_chart(chart, tmp_path / "charts", tmp_path / ".tmp")


def test_oci_chart_pushed_with_helm(registry, tmp_path):
    tgz = make_chart(tmp_path / "build", name="ocidemo", version="0.3.0")
    subprocess.run(["helm", "push", str(tgz), f"oci://{registry.host}/charts", "--plain-http"],
                   check=True, capture_output=True)
    chart = Chart(name="ocidemo", version="0.3.0", repo=f"oci://{registry.host}/charts")
    res = fetch_chart(chart, tmp_path / "charts", tmp_path / ".tmp")
    assert res.sha256 == sha256_bytes(tgz.read_bytes())  # helm pull returns the pushed archive byte for byte
    with pytest.raises(LockDriftError, match=r"chart ocidemo 0\.3\.0 .*differs from the lock's 0{64}"):
        fetch_chart(chart, tmp_path / "charts2", tmp_path / ".tmp", locked_sha256="0" * 64, enforce_lock=True)
    assert not (tmp_path / "charts2" / "ocidemo-0.3.0.tgz").exists()


# ------------------------------------------------------------------------------------------------ files


def _file(demo_sources, name: str, **kw) -> File:
    url, sha = demo_sources.files[name]
    return File(name=name, url=kw.get("url", url), sha256=kw.get("sha256", sha))


def test_file_download_checks_the_pin(demo_sources, tmp_path):
    res = fetch_file(_file(demo_sources, "install.sh"), tmp_path / "files", tmp_path / ".tmp")
    assert res.fetched and (tmp_path / "files" / "install.sh").read_bytes().startswith(b"#!/bin/sh")
    again = fetch_file(_file(demo_sources, "install.sh"), tmp_path / "files", tmp_path / ".tmp")
    assert not again.fetched


def test_interrupted_download_resumes_with_range(demo_sources, tmp_path):
    data = (demo_sources.root / "files" / "payload.bin").read_bytes()
    part = tmp_path / ".tmp" / "files" / "payload.bin.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(data[:300_000])  # what a killed build leaves behind
    progress = Progress()
    res = fetch_file(_file(demo_sources, "payload.bin"), tmp_path / "files", tmp_path / ".tmp", progress)
    assert res.sha256 == sha256_bytes(data)
    assert progress.counters.fetched_bytes == len(data) - 300_000  # only the rest came over the wire
    assert not part.exists()


def test_a_corrupt_partial_is_replaced_not_trusted(demo_sources, tmp_path):
    data = (demo_sources.root / "files" / "payload.bin").read_bytes()
    part = tmp_path / ".tmp" / "files" / "payload.bin.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(b"\xff" * 1000)
    res = fetch_file(_file(demo_sources, "payload.bin"), tmp_path / "files", tmp_path / ".tmp")
    assert res.sha256 == sha256_bytes(data)


def test_sha256_mismatch_discards_and_names_the_file(demo_sources, tmp_path):
    bad = "0" * 64
    with pytest.raises(SourceError) as e:
        fetch_file(_file(demo_sources, "install.sh", sha256=bad), tmp_path / "files", tmp_path / ".tmp")
    msg = str(e.value)
    assert msg.startswith("file install.sh: sha256 mismatch") and f"expected {bad}" in msg
    assert f"got {demo_sources.files['install.sh'][1]}" in msg
    assert not (tmp_path / "files" / "install.sh").exists()
    assert not (tmp_path / ".tmp" / "files" / "install.sh.part").exists()


def test_missing_file_url(demo_sources, tmp_path):
    with pytest.raises(SourceError, match=r"file install\.sh: not found at .*/nope \(HTTP 404\)"):
        fetch_file(_file(demo_sources, "install.sh", url=demo_sources.base_url + "/nope"), tmp_path / "f", tmp_path / ".t")


def test_file_url_source(demo_sources, tmp_path):
    src = demo_sources.root / "files" / "install.sh"
    res = fetch_file(_file(demo_sources, "install.sh", url=f"file://{src}"), tmp_path / "files", tmp_path / ".tmp")
    assert res.sha256 == demo_sources.files["install.sh"][1]


def test_altered_stored_file_is_fetched_again(demo_sources, tmp_path):
    f = _file(demo_sources, "install.sh")
    fetch_file(f, tmp_path / "files", tmp_path / ".tmp")
    (tmp_path / "files" / "install.sh").write_bytes(b"tampered")
    res = fetch_file(f, tmp_path / "files", tmp_path / ".tmp")
    assert res.fetched and (tmp_path / "files" / "install.sh").read_bytes().startswith(b"#!/bin/sh")


# ------------------------------------------------------------------------------------------------ local models


def test_local_model_file_by_file(demo_sources, tmp_path):
    m = Model(name="tiny", source=f"file://{demo_sources.model_dir}")
    res = fetch_model(m, tmp_path / "models", tmp_path / ".tmp")
    assert {f.path: f.sha256 for f in res.files} == demo_sources.model_files
    assert res.revision == "local" and all(f.fetched for f in res.files)
    assert (tmp_path / "models" / "tiny" / "tokenizer" / "vocab.txt").read_bytes() == b"hello\nworld\n"
    again = fetch_model(m, tmp_path / "models", tmp_path / ".tmp")
    assert not any(f.fetched for f in again.files)


def test_local_model_drift_against_the_lock(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "w.bin").write_bytes(b"one")
    m = Model(name="m", source=str(src))
    res = fetch_model(m, tmp_path / "models", tmp_path / ".tmp")
    locked = {"source": str(src), "revision": res.revision, "files": {f.path: f.sha256 for f in res.files}}
    (src / "w.bin").write_bytes(b"two")
    with pytest.raises(LockDriftError, match=r"model m: file w\.bin sha256 \w+ differs from the lock's \w+"):
        fetch_model(m, tmp_path / "models", tmp_path / ".tmp", locked=locked, enforce_lock=True)
    assert (tmp_path / "models" / "m" / "w.bin").read_bytes() == b"one"  # nothing written on drift
    (src / "extra.json").write_bytes(b"{}")
    (src / "w.bin").write_bytes(b"one")
    with pytest.raises(LockDriftError, match=r"file extra\.json is now at the source but not in the lock"):
        fetch_model(m, tmp_path / "models", tmp_path / ".tmp", locked=locked, enforce_lock=True)


def test_allow_patterns_and_pruning(tmp_path):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    for name in ("a.safetensors", "b.bin", "sub/c.json"):
        (src / name).write_bytes(name.encode())
    fetch_model(Model(name="m", source=str(src)), tmp_path / "models", tmp_path / ".tmp")
    res = fetch_model(Model(name="m", source=str(src), allowPatterns=["*.safetensors", "*.json"]),
                      tmp_path / "models", tmp_path / ".tmp")
    assert sorted(f.path for f in res.files) == ["a.safetensors", "sub/c.json"]
    assert not (tmp_path / "models" / "m" / "b.bin").exists()  # dropped by the new patterns


# ------------------------------------------------------------------------------------------------ hf:// sources


def test_hf_source_parsing_and_endpoint(monkeypatch):
    assert parse_hf("hf://mistralai/Mistral-7B-Instruct-v0.3@e0bc86c") == ("mistralai/Mistral-7B-Instruct-v0.3", "e0bc86c")
    with pytest.raises(SourceError):
        parse_hf("hf://org/repo")
    monkeypatch.setenv("HF_ENDPOINT", "http://mirror.internal")
    assert hf_endpoint(Model(name="m", source="hf://o/r@main")) == "http://mirror.internal"
    assert hf_endpoint(Model(name="m", source="hf://o/r@main", endpoint="http://other/")) == "http://other"
    monkeypatch.delenv("HF_ENDPOINT")
    assert hf_endpoint(Model(name="m", source="hf://o/r@main")) == "https://huggingface.co"


def test_hub_file_list_uses_lfs_sha256_and_refuses_escapes():
    info = SimpleNamespace(sha="c0ffee" * 6 + "abcd", siblings=[
        SimpleNamespace(rfilename="config.json", size=10, lfs=None),
        SimpleNamespace(rfilename="model-00001.safetensors", size=99, lfs=SimpleNamespace(sha256="ab" * 32)),
        SimpleNamespace(rfilename="README.md", size=5, lfs=None),
    ])
    commit, files = remote_files_from_info(info, ["*.json", "*.safetensors"], "model m")
    assert commit == info.sha
    assert [(f.path, f.lfs_sha256) for f in files] == [("config.json", None), ("model-00001.safetensors", "ab" * 32)]
    with pytest.raises(SourceError, match="would escape the model folder"):
        safe_relpath("../../etc/passwd", "model m")
    with pytest.raises(SourceError, match="no files at this revision match allowPatterns"):
        remote_files_from_info(info, ["*.gguf"], "model m")


class _HubMirror(BaseHTTPRequestHandler):
    """The two Hugging Face endpoints a model download uses, over a directory: enough for an internal mirror."""

    protocol_version = "HTTP/1.1"
    repo = "org/tiny"
    commit = "1" * 40
    files: dict[str, bytes] = {}
    lie_about: str | None = None  # serve this file with different bytes than the LFS sha256 says

    def log_message(self, *a):
        pass

    def _send(self, code: int, body: bytes, ctype: str = "application/json") -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        if path.startswith(f"/api/models/{self.repo}/revision/"):
            sib = [{"rfilename": n, "size": len(d), "blobId": "0" * 40,
                    **({"lfs": {"sha256": hashlib.sha256(d).hexdigest(), "size": len(d), "pointerSize": 130}}
                       if n.endswith(".safetensors") else {})}
                   for n, d in sorted(self.files.items())]
            return self._send(200, json.dumps({"id": self.repo, "sha": self.commit, "siblings": sib}).encode())
        prefix = f"/{self.repo}/resolve/{self.commit}/"
        if path.startswith(prefix) and path[len(prefix):] in self.files:
            name = path[len(prefix):]
            data = self.files[name] if name != self.lie_about else b"X" * len(self.files[name])
            return self._send(200, data, "application/octet-stream")
        self._send(404, b'{"error": "not found"}')


@pytest.fixture
def hub_mirror():
    _HubMirror.files = {"config.json": b'{"a": 1}', "model.safetensors": b"\x01" * 4096}
    _HubMirror.lie_about = None
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _HubMirror)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def test_hf_model_from_an_internal_mirror(hub_mirror, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    m = Model(name="tiny", source="hf://org/tiny@main", endpoint=hub_mirror)
    res = fetch_model(m, tmp_path / "models", tmp_path / ".tmp")
    assert res.revision == _HubMirror.commit  # the branch resolved to its commit, which the lock records
    assert {f.path: f.sha256 for f in res.files} == {n: sha256_bytes(d) for n, d in _HubMirror.files.items()}
    again = fetch_model(m, tmp_path / "models", tmp_path / ".tmp",
                        locked={"revision": res.revision, "files": {f.path: f.sha256 for f in res.files}})
    assert not any(f.fetched for f in again.files)


def test_hf_lfs_sha256_mismatch_is_refused(hub_mirror, tmp_path):
    _HubMirror.lie_about = "model.safetensors"
    m = Model(name="tiny", source="hf://org/tiny@main", endpoint=hub_mirror)
    with pytest.raises(SourceError, match=r"model tiny: file model\.safetensors: sha256 \w+ differs from the hub's LFS sha256"):
        fetch_model(m, tmp_path / "models", tmp_path / ".tmp")
    assert not (tmp_path / "models" / "tiny" / "model.safetensors").exists()


def test_hf_unknown_repo_is_one_line(hub_mirror, tmp_path):
    m = Model(name="x", source="hf://org/absent@main", endpoint=hub_mirror)
    with pytest.raises(SourceError) as e:
        fetch_model(m, tmp_path / "models", tmp_path / ".tmp")
    assert str(e.value).startswith(f"model x (hf://org/absent@main): cannot resolve on {hub_mirror}")
    assert "\n" not in str(e.value)


def test_helm_runs_with_an_allow_listed_environment(monkeypatch, tmp_path):
    """Pyhelm3 starts helm through a shell with our whole environment; the launcher cuts it."""
    import subprocess

    from installer.core.helm import allow_listed_helm

    monkeypatch.setenv("MEDAI_KEY_PASSWORD", "never-in-helm-0042")
    monkeypatch.setenv("SOME_CLOUD_TOKEN", "cloud-token-0042")
    launcher = allow_listed_helm()
    text = Path(launcher).read_text()
    assert "/usr/bin/env -i" in text and "never-in-helm-0042" not in text and "cloud-token-0042" not in text
    assert subprocess.run([launcher, "version", "--short"], capture_output=True, text=True, timeout=60).returncode == 0
    # the same launcher around `env` shows exactly what the child sees
    from installer.core.childenv import allow_listed_executable, child_env

    seen = subprocess.run([allow_listed_executable("/usr/bin/env", child_env(network=True))], capture_output=True,
                          text=True, timeout=60).stdout
    assert "never-in-helm-0042" not in seen and "cloud-token-0042" not in seen and "PATH=" in seen
