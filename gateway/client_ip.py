"""The client's IP address: the socket peer, or a trusted proxy's forwarding header.

A forwarding header (`X-Forwarded-For`, or RFC 7239 `Forwarded`) is only read
when the direct peer is one of `TRUSTED_PROXIES`; anybody else could write any
address there. Each proxy appends the address it received the request from,
so the header is read from the right: trusted proxies are skipped and the
first untrusted hop is the client. Entries further left were written by that
client (or by proxies we know nothing about) and are ignored, so a client
cannot choose its own address by sending the header.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable, Sequence
from typing import Literal

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
ProxyHeader = Literal["x-forwarded-for", "forwarded"]

# Hops read from the right of a forwarding header: a chain of trusted proxies is
# short, and a hostile header of thousands of entries must not cost more.
MAX_HOPS = 32


def parse_networks(value: str, *, setting: str) -> tuple[IPNetwork, ...]:
    """Networks from a comma-separated list of addresses and CIDRs (`10.0.0.0/8, ::1`)."""
    networks: list[IPNetwork] = []
    for item in value.split(","):
        item = item.strip()
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"{setting}: {item!r} is not an IP address or CIDR network") from None
    return tuple(networks)


def parse_address(value: str) -> IPAddress | None:
    """An address from a header entry: `1.2.3.4`, `1.2.3.4:80`, `::1`, `[::1]:80`; else None."""
    value = value.strip().strip('"')
    if value.startswith("["):
        value = value[1 : value.find("]")] if "]" in value else ""
    elif value.count(":") == 1:  # IPv4 with a port; a bare IPv6 has two or more colons
        value = value.partition(":")[0]
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _forwarded_for(values: Iterable[str]) -> list[str]:
    """The `for=` parameter of each element of RFC 7239 `Forwarded` headers, in order."""
    hops: list[str] = []
    for value in values:
        for element in value.split(","):
            found = ""
            for pair in element.split(";"):
                name, _, param = pair.strip().partition("=")
                if name.lower() == "for":
                    found = param
            # An element without `for=` is a hop we cannot place: keep it, unparsable.
            hops.append(found)
    return hops


def _hops(headers: Sequence[tuple[bytes, bytes]], header: ProxyHeader) -> list[str]:
    name = header.encode()
    values = [v.decode("latin-1") for k, v in headers if k.lower() == name]
    if not values:
        return []
    if header == "forwarded":
        return _forwarded_for(values)[-MAX_HOPS:]
    # Repeated headers are one list, in order (RFC 9110 section 5.3).
    return ",".join(values).rsplit(",", MAX_HOPS)[-MAX_HOPS:]


class ClientAddress:
    """Resolves the client IP of a request from its peer and, behind trusted proxies, a header."""

    def __init__(
        self, trusted_proxies: Sequence[IPNetwork] = (), header: ProxyHeader = "x-forwarded-for"
    ) -> None:
        self.trusted = tuple(trusted_proxies)
        self.header = header
        # Requests come from far fewer peers than they number: parse and classify each once.
        self.classify = functools.lru_cache(maxsize=4096)(self._classify)

    def is_trusted(self, address: IPAddress) -> bool:
        """Whether `address` is one of the trusted proxies."""
        return any(address in network for network in self.trusted)

    def _classify(self, peer: str) -> tuple[IPAddress | None, bool]:
        """The peer's address (None if it is not one) and whether it is a trusted proxy."""
        address = parse_address(peer)
        return address, address is not None and self.is_trusted(address)

    def resolve(self, peer: str | None, headers: Sequence[tuple[bytes, bytes]]) -> IPAddress | None:
        """The client address; None when the peer has no IP address (a Unix socket)."""
        address, trusted = self.classify(peer) if peer else (None, False)
        if not trusted:
            return address
        for hop in reversed(_hops(headers, self.header)):
            forwarded = parse_address(hop)
            if forwarded is None:
                # `unknown`, an obfuscated name or garbage: the nearest known hop stands in.
                return address
            address = forwarded
            if not self.is_trusted(address):
                return address
        # Every hop is a trusted proxy (or there is no header): the farthest one we know.
        return address


def bucket_name(address: IPAddress) -> str:
    """The rate-limit identity of an address: itself for IPv4, its /64 for IPv6.

    One IPv6 host is commonly given a whole /64, so counting single addresses
    would let it rotate through 2^64 fresh buckets.
    """
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)
