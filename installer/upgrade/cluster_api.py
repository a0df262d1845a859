"""Read the cluster's state as raw API JSON (the shapes installer.upgrade.cluster_checks takes), with the
kubernetes client and the admin kubeconfig `medai install` saved. Needs a running cluster: E2E only."""
from __future__ import annotations

import json
from pathlib import Path

from installer.core.errors import InstallError


class ClusterAPI:
    def __init__(self, kubeconfig: Path):
        if not kubeconfig.is_file():
            raise InstallError(f"{kubeconfig}: no admin kubeconfig (written by a successful medai install)")
        from kubernetes import config

        self.api = config.new_client_from_config(str(kubeconfig))

    def get(self, path: str, optional: bool = False):
        from kubernetes.client.exceptions import ApiException

        try:
            resp = self.api.call_api(path, "GET", auth_settings=["BearerToken"], _preload_content=False,
                                     _return_http_data_only=True, _request_timeout=30)
        except ApiException as e:
            if optional and e.status == 404:
                return None
            raise InstallError(f"GET {path}: HTTP {e.status} {e.reason}") from None
        except Exception as e:  # urllib3 connection errors
            raise InstallError(f"GET {path}: cluster unreachable ({type(e).__name__}: {e})") from None
        data = resp.data.decode()
        return json.loads(data) if data.lstrip().startswith(("{", "[")) else data

    def state(self) -> dict:
        return {
            "nodes": self.get("/api/v1/nodes"),
            "pods": self.get("/api/v1/pods"),
            "pdbs": self.get("/apis/policy/v1/poddisruptionbudgets"),
            "readyzEtcd": self.get("/readyz/etcd"),
            "longhorn": self.get("/apis/longhorn.io/v1beta2/namespaces/longhorn-system/volumes", optional=True),
        }
