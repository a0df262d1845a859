"""NVIDIA's device plugin chart with GPU feature discovery and its node-feature-discovery subchart: on GPU agents
(tainted gpu=true:NoSchedule) the NFD worker (subchart alias nfd) must tolerate the taint as the plugin and GFD do (the bundle's
values), or the GPU nodes get no feature labels."""
from __future__ import annotations

from installer.platform.flows import GPU_TOLERATION, Flow, api, dns

NAME = "nvidia"
NAMESPACE = "nvidia-device-plugin"
DEFAULTS = {
    "medai_nvidia_release_timeout": 600,
}
NFD = {"app.kubernetes.io/name": "node-feature-discovery"}
SMALL = {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}}


def values(v: dict) -> dict:
    return {"resources": SMALL,
            "nfd": {"worker": {"tolerations": [GPU_TOLERATION], "resources": SMALL},
                                       "master": {"resources": SMALL}, "gc": {"resources": SMALL}}}


def flows(v: dict, ns: dict) -> list[Flow]:
    """NFD's workers send their features to the master (gRPC 8080) and, with the NodeFeature API, write
    NodeFeature objects; the master labels the nodes; the plugin and GFD talk only to the kubelet's socket."""
    me = ns[NAME]
    return dns(me) + [
        api(me, why="NFD's master and workers, GFD"),
        Flow(me, me, "grpc", "TCP", {**NFD, "role": "worker"}, {**NFD, "role": "master"}, "NFD workers to the master"),
    ]
