"""The organisation's own networks (``LOGWARDEN_INTERNAL_NETWORKS``): what rules mean by
``cidr: internal`` and what ``new_term`` means by an internal or external address."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from functools import lru_cache

# RFC 1918, carrier-grade NAT (RFC 6598, used by EKS and GKE pod ranges), IPv6 unique local and
# loopback. Kubernetes' usual pod and service ranges (10.244.0.0/16, 10.96.0.0/12) fall in 10/8.
DEFAULT_INTERNAL = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7",
                    "127.0.0.0/8", "::1/128")
Net = ipaddress.IPv4Network | ipaddress.IPv6Network


class Networks(tuple[Net, ...]):
    """Parsed networks, hashed once: every lookup's cache key holds them, and ``ipaddress``
    hashes a network in Python (a cached lookup asked seven of them each time)."""

    _hash: int

    def __new__(cls, nets: Iterable[Net]) -> Networks:
        self = super().__new__(cls, nets)
        self._hash = tuple.__hash__(self)
        return self

    def __hash__(self) -> int:
        return self._hash


def parse_networks(cidrs: Iterable[str]) -> Networks:
    """Raises ValueError naming the bad CIDR."""
    out = []
    for text in cidrs:
        try:
            out.append(ipaddress.ip_network(str(text), strict=False))
        except ValueError as exc:
            raise ValueError(f"bad CIDR {text!r}: {exc}") from None
    return Networks(out)


def in_networks(value: object, nets: tuple[Net, ...]) -> bool:
    if value is None:
        return False
    return _lookup(str(value), nets)


@lru_cache(maxsize=65536)
def _lookup(value: str, nets: tuple[Net, ...]) -> bool:
    try:
        addr = ipaddress.ip_address(value)
    except ValueError:
        return False
    return any(addr in net for net in nets)


def prefix_of(value: str, bits: int) -> str:
    """The /bits network of an IPv4 address (IPv6: /bits*2, at most /64), or the value itself."""
    try:
        addr = ipaddress.ip_address(value)
    except ValueError:
        return value
    length = bits if addr.version == 4 else min(bits * 2, 64)
    return str(ipaddress.ip_network(f"{addr}/{length}", strict=False))
