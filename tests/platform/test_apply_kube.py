"""KubeApi, the control host's one Kubernetes client, against an API server on 127.0.0.1 that answers discovery
and the recorded List responses of tests/upgrade/fixtures: what the upgrade's preflight reads (nodes, pods, PDBs,
/readyz/etcd, Longhorn's volumes when its CRD is served), with one-line errors. No K3s: a live cluster is read
only by the MEDAI_E2E_K3S tests."""
from __future__ import annotations

import json
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from installer.core.errors import InstallError
from installer.platform.apply import KubeApi
from installer.upgrade.cluster_state import read_state

pytestmark = pytest.mark.loopback

FIX = Path(__file__).resolve().parents[1] / "upgrade" / "fixtures"
ETCD_FAILED = "[-]etcd failed: reason withheld\nreadyz check failed\n"
REFUSED = 'Pod "p" is invalid: spec.containers: Required value'


def _fixture(name: str) -> dict:
    return json.loads((FIX / name).read_text())


def _resources(group_version: str, *rows: tuple[str, str, bool]) -> dict:
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version,
            "resources": [{"name": n, "singularName": "", "namespaced": ns, "kind": k, "verbs": ["get", "list"]}
                          for n, k, ns in rows]}


def _group(name: str, version: str) -> dict:
    gv = {"groupVersion": f"{name}/{version}", "version": version}
    return {"name": name, "versions": [gv], "preferredVersion": gv}


def _routes(longhorn: bool) -> dict[str, tuple[int, str]]:
    groups = [_group("policy", "v1")] + ([_group("longhorn.io", "v1beta2")] if longhorn else [])
    doc = {
        "/version": {"major": "1", "minor": "34", "gitVersion": "v1.34.2+k3s1"},
        "/api": {"kind": "APIVersions", "versions": ["v1"]},
        "/apis": {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups},
        "/api/v1": _resources("v1", ("nodes", "Node", False), ("pods", "Pod", True)),
        "/apis/policy/v1": _resources("policy/v1", ("poddisruptionbudgets", "PodDisruptionBudget", True)),
        "/apis/longhorn.io/v1beta2": _resources("longhorn.io/v1beta2", ("volumes", "Volume", True)),
        "/api/v1/nodes": _fixture("nodes-ready.json"),
        "/api/v1/nodes/srv-1": _fixture("nodes-ready.json")["items"][0],
        "/api/v1/pods": _fixture("pods.json"),
        "/apis/policy/v1/poddisruptionbudgets": _fixture("pdbs.json"),
        "/apis/longhorn.io/v1beta2/namespaces/longhorn-system/volumes": _fixture("longhorn-volumes.json"),
    }
    out = {path: (200, json.dumps(body)) for path, body in doc.items()}
    out["/readyz/etcd"] = (500, ETCD_FAILED)
    return out


@pytest.fixture
def api(tmp_path, monkeypatch):
    """(start(longhorn) -> kubeconfig, the paths asked). The discovery cache goes under tmp_path."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    servers, asked = [], []

    def start(longhorn: bool = True, forbidden: bool = False) -> Path:
        routes = _routes(longhorn)

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 http.server's name
                path = self.path.split("?")[0]
                asked.append(path)
                status, body = routes.get(path, (404, json.dumps({"kind": "Status", "code": 404})))
                if forbidden and path == "/api/v1/nodes":
                    status, body = 403, json.dumps({"kind": "Status", "code": 403, "reason": "Forbidden"})
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json" if body.startswith("{") else "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_PATCH(self):  # noqa: N802 server-side apply, refused as admission refuses it
                asked.append(("PATCH", self.path.split("?")[0]))
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                data = json.dumps({"kind": "Status", "code": 422, "reason": "Invalid", "message": REFUSED}).encode()
                self.send_response(422, "Unprocessable Entity")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
        kc = tmp_path / f"kubeconfig-{len(servers)}"
        kc.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "c",
            "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{srv.server_address[1]}"}}],
            "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
            "users": [{"name": "u", "user": {"token": "recorded"}}]}))
        return kc

    yield start, asked
    for srv in servers:
        srv.shutdown()
        srv.server_close()


def test_the_upgrade_reads_the_cluster_through_kubeapi(api):
    start, asked = api
    state = read_state(KubeApi(start()))
    assert state["nodes"]["items"] == _fixture("nodes-ready.json")["items"]
    assert state["pods"]["items"] == _fixture("pods.json")["items"]
    assert state["pdbs"]["items"] == _fixture("pdbs.json")["items"]
    assert state["longhorn"]["items"] == _fixture("longhorn-volumes.json")["items"]
    assert state["readyzEtcd"] == ETCD_FAILED  # a failing health check's body (HTTP 500) is what the preflight reads
    assert "/readyz/etcd" in asked


def test_a_kind_the_api_does_not_serve_is_none_when_optional_else_one_line(api):
    start, _ = api
    kube = KubeApi(start(longhorn=False))
    assert read_state(kube)["longhorn"] is None
    with pytest.raises(InstallError, match=r"^list longhorn.io/v1beta2 Volume in namespace longhorn-system: "
                                           r"the API does not serve it$"):
        kube.list("longhorn.io/v1beta2", "Volume", "longhorn-system")


def test_api_errors_are_one_line(api, tmp_path):
    start, _ = api
    with pytest.raises(InstallError, match=r"^list v1 Node: HTTP 403 Forbidden$"):
        KubeApi(start(forbidden=True)).list("v1", "Node")
    with pytest.raises(InstallError, match=r"kubeconfig-none: no admin kubeconfig \(written by a successful medai install\)"):
        KubeApi(tmp_path / "kubeconfig-none")


def test_get_apply_and_their_errors_are_one_line(api):
    start, asked = api
    kube = KubeApi(start())
    assert kube.get("v1", "Node", "srv-1", None) == _fixture("nodes-ready.json")["items"][0]
    assert kube.get("v1", "Node", "gone", None) is None  # 404: absent, not an error
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "medai"}, "spec": {}}
    with pytest.raises(InstallError) as e:
        kube.apply(pod)
    assert str(e.value) == f"apply Pod medai/p: HTTP 422 Unprocessable Entity: {REFUSED}"
    assert ("PATCH", "/api/v1/namespaces/medai/pods/p") in asked
