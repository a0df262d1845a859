"""Cilium: kube-proxy replacement on the API address K3s serves on every node, Pod CIDRs from K3s; every image
pinned to the platform manifest the bundle carries (docs/bundle.md, "Multi-arch images at the site").

Without kube-proxy Cilium cannot use the kubernetes Service to find the API: it needs an address that answers
on every node before any Service works. K3s serves one on each node at 127.0.0.1:6444: on a server the
kube-apiserver itself listens there (K3s's supervisor fronts it on 6443), on an agent K3s's client-side load
balancer listens there and spreads over the servers it learnt, failing over by itself. No VIP is involved.
"""
from __future__ import annotations

from installer.bundle.artifacts import BundleIndex
from installer.oci.refs import parse_ref
from installer.platform.flows import Flow

NAME = "cilium"
NAMESPACE = "kube-system"
DEFAULTS = {
    "medai_cilium_kube_proxy_replacement": True,  # K3s runs with kube-proxy disabled
    "medai_cilium_k8s_service_host": "127.0.0.1",  # K3s's node-local API endpoint (servers and agents alike)
    "medai_cilium_k8s_service_port": 6444,
    "medai_cilium_operator_replicas": None,  # None: min(2, servers)
    "medai_cilium_hubble_relay": True,
    "medai_cilium_release_timeout": 600,
    "medai_cilium_image_digests": {},  # from the verified index: values path of an image -> its platform manifest
}

# The chart's images: the values path of each, the repository the bundle carries it under (the chart appends
# "-generic" to the operator's repository) and the key holding its digest. The chart pins each to upstream's index
# digest, which a site registry cannot serve for an index the bundle reduced to the site's platform.
IMAGES = {
    "image": ("quay.io/cilium/cilium", "digest"),
    "operator.image": ("quay.io/cilium/operator-generic", "genericDigest"),
    "envoy.image": ("quay.io/cilium/cilium-envoy", "digest"),
    "certgen.image": ("quay.io/cilium/certgen", "digest"),
    "hubble.relay.image": ("quay.io/cilium/hubble-relay", "digest"),
    "hubble.ui.backend.image": ("quay.io/cilium/hubble-ui-backend", "digest"),
    "hubble.ui.frontend.image": ("quay.io/cilium/hubble-ui", "digest"),
    "clustermesh.apiserver.image": ("quay.io/cilium/clustermesh-apiserver", "digest"),
    "preflight.image": ("quay.io/cilium/cilium", "digest"),
    "preflight.envoy.image": ("quay.io/cilium/cilium-envoy", "digest"),
    "nodeinit.image": ("quay.io/cilium/startup-script", "digest"),
}


def image_digests(index: BundleIndex) -> dict[str, str]:
    """Values path -> the digest of the platform manifest the bundle carries, for each of the chart's images it
    carries (BundleIndex.pinned_image)."""
    out = {}
    for path, (repository, _) in IMAGES.items():
        pinned = index.pinned_image(repository)
        if pinned is not None:
            out[path] = parse_ref(pinned).digest
    return out


def _pin(values: dict, digests: dict[str, str]) -> dict:
    """VALUES with each image of DIGESTS pinned to its digest (useDigest on)."""
    for path, digest in digests.items():
        node = values
        for key in path.split("."):
            node = node.setdefault(key, {})
        node.update({IMAGES[path][1]: digest, "useDigest": True})
    return values


def values(v: dict) -> dict:
    return _pin({
        "kubeProxyReplacement": v["medai_cilium_kube_proxy_replacement"],
        "k8sServiceHost": v["medai_cilium_k8s_service_host"],
        "k8sServicePort": v["medai_cilium_k8s_service_port"],
        # Pod CIDRs are the ones K3s allocates per node from its cluster-cidr: Cilium and K3s cannot disagree.
        "ipam": {"mode": "kubernetes"},
        "k8s": {"requireIPv4PodCIDR": True},
        "operator": {"replicas": v["medai_cilium_operator_replicas"]},
        "hubble": {"enabled": True, "relay": {"enabled": v["medai_cilium_hubble_relay"]}},
        # NetworkPolicy ipBlocks may select node addresses (the API server, kubelets): the platform policies need it.
        "policyCIDRMatchMode": ["nodes"],
    }, v["medai_cilium_image_digests"])


def flows(v: dict, ns: dict) -> list[Flow]:
    """None: Cilium runs in kube-system, which gets no platform NetworkPolicies (its agents and operator are on
    the host network; Hubble Relay reaches the agents there)."""
    return []
