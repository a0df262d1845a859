"""medai_egress_ledger: `nft -j list table` output -> [{address, packets, bytes, line}] (installer/deploy/egress.py;
filters run on the control host, where medai is installed)."""
from __future__ import annotations


def medai_egress_ledger(text: str) -> list[dict]:
    from installer.deploy.egress import ledger

    return ledger(text)


def medai_egress_network(address: str, netmask: str) -> str:
    """10.20.0.11 + 255.255.255.0 -> 10.20.0.0/24"""
    import ipaddress

    return str(ipaddress.ip_interface(f"{address}/{netmask}").network)


class FilterModule:
    def filters(self):
        return {"medai_egress_ledger": medai_egress_ledger, "medai_egress_network": medai_egress_network}
