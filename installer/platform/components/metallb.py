"""MetalLB: layer-2 announcements of the site's address pool (medai_metallb_pool, required by the inventory)."""
from __future__ import annotations

from installer.platform.flows import GPU_TOLERATION, NODES, Flow, api, dns

NAME = "metallb"
NAMESPACE = "metallb-system"
DEFAULTS = {
    "medai_metallb_l2_only": True,  # false: the chart's FRR speaker for BGP
    "medai_metallb_pool_name": "medai-site",
    "medai_metallb_resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
    "medai_metallb_release_timeout": 300,
}


def values(v: dict) -> dict:
    frr = not v["medai_metallb_l2_only"]
    # the controller: the chart's non-root pod security context plus the seccomp profile restricted asks for
    controller = {"securityContext": {"runAsNonRoot": True, "runAsUser": 65534, "fsGroup": 65534,
                                      "seccompProfile": {"type": "RuntimeDefault"}}}
    controller["resources"] = v["medai_metallb_resources"]
    # the speakers announce from every node a Service's pods may run on (externalTrafficPolicy Local): GPU agents too
    speaker = {"frr": {"enabled": frr}, "resources": v["medai_metallb_resources"], "tolerations": [GPU_TOLERATION]}
    return {"speaker": speaker, "frrk8s": {"enabled": frr}, "controller": controller}


def pool_range(text: str) -> str:
    """MetalLB accepts CIDRs and FIRST-LAST ranges; written without spaces."""
    return "-".join(p.strip() for p in text.split("-")) if "-" in text else text.strip()


def objects(v: dict, pool: str, namespace: str) -> list[dict]:
    """The address pool and its L2 advertisement: applied once the release's CRDs exist."""
    name = v["medai_metallb_pool_name"]
    meta = {"namespace": namespace, "labels": {"app.kubernetes.io/managed-by": "medai"}}
    return [
        {"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
         "metadata": {"name": name, **meta}, "spec": {"addresses": [pool_range(pool)]}},
        {"apiVersion": "metallb.io/v1beta1", "kind": "L2Advertisement",
         "metadata": {"name": name, **meta}, "spec": {"ipAddressPools": [name]}},
    ]


CONTROLLER = {"app.kubernetes.io/name": "metallb", "app.kubernetes.io/component": "controller"}
SPEAKER = {"app.kubernetes.io/name": "metallb", "app.kubernetes.io/component": "speaker"}


def flows(v: dict, ns: dict) -> list[Flow]:
    me = ns[NAME]
    return dns(me) + [
        api(me, why="controller and speakers watch Services and pools"),
        Flow(NODES, me, 9443, "TCP", {}, CONTROLLER, "the API server calls the controller's webhook"),
        Flow(me, me, 7946, "TCP", SPEAKER, SPEAKER, "speakers' memberlist"),
        Flow(me, me, 7946, "UDP", SPEAKER, SPEAKER, "speakers' memberlist"),
    ]
