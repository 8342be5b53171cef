"""The client's address: the peer, or what a configured trusted proxy says it saw."""

from __future__ import annotations

from collections.abc import Iterable
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network


def parse_ip(value: str) -> IPAddress | None:
    """An address from a peer or an X-Forwarded-For entry (ports tolerated), or None."""
    text = value.strip()
    if text.startswith("["):  # "[2001:db8::1]:443"
        text = text[1 : text.find("]")] if "]" in text else ""
    elif text.count(":") == 1:  # "192.0.2.1:443"
        text = text.split(":", 1)[0]
    try:
        address = ip_address(text)
    except ValueError:
        return None
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(address: IPAddress, networks: Iterable[IPNetwork]) -> bool:
    return any(address.version == net.version and address in net for net in networks)


def from_trusted_proxy(peer: str | None, trusted_proxies: Iterable[IPNetwork]) -> bool:
    """Whether the peer is a configured trusted proxy, whose forwarding headers are believed."""
    address = parse_ip(peer) if peer is not None else None
    return address is not None and _trusted(address, tuple(trusted_proxies))


def client_ip(
    peer: str | None, forwarded_for: str | None, trusted_proxies: Iterable[IPNetwork]
) -> str | None:
    """The address to attribute a request to.

    X-Forwarded-For counts only when the peer is a trusted proxy; then the answer is the
    right-most entry that is not itself a trusted proxy (entries further left are whatever
    the client chose to send). An unreadable entry there means the chain cannot be trusted,
    so the answer falls back to the peer.
    """
    if peer is None:
        return None
    networks = tuple(trusted_proxies)
    peer_address = parse_ip(peer)
    if peer_address is None:
        return peer
    if not forwarded_for or not _trusted(peer_address, networks):
        return str(peer_address)
    entries = [entry for entry in forwarded_for.split(",") if entry.strip()]
    leftmost_trusted: IPAddress | None = None
    for entry in reversed(entries):
        address = parse_ip(entry)
        if address is None:
            return str(peer_address)
        if not _trusted(address, networks):
            return str(address)
        leftmost_trusted = address
    return str(leftmost_trusted or peer_address)
