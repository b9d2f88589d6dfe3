"""The client address: socket peer, or the rightmost untrusted hop behind trusted proxies."""

from __future__ import annotations

import ipaddress

import pytest

from gateway.client_ip import (
    MAX_HOPS,
    ClientAddress,
    ProxyHeader,
    bucket_name,
    parse_address,
    parse_networks,
)

TRUSTED = parse_networks("10.0.0.0/8, 192.168.1.1, fd00::/8", setting="TRUSTED_PROXIES")


def resolve(peer: str | None, header: ProxyHeader = "x-forwarded-for", *values: str) -> str | None:
    headers = [(header.encode(), value.encode()) for value in values]
    address = ClientAddress(TRUSTED, header).resolve(peer, headers)
    return None if address is None else str(address)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("198.51.100.1", "198.51.100.1"),
        (" 198.51.100.1 ", "198.51.100.1"),
        ("198.51.100.1:8080", "198.51.100.1"),
        ("2001:db8::1", "2001:db8::1"),
        ("[2001:db8::1]:443", "2001:db8::1"),
        ('"[2001:db8::1]:443"', "2001:db8::1"),
        ("::ffff:198.51.100.1", "198.51.100.1"),
        ("unknown", None),
        ("_hidden", None),
        ("", None),
        ("[2001:db8::1", None),
        ("999.1.1.1", None),
        ("198.51.100.1:80:80", None),
    ],
)
def test_parse_address(value: str, expected: str | None) -> None:
    parsed = parse_address(value)
    assert (None if parsed is None else str(parsed)) == expected


def test_an_untrusted_peer_is_the_client_whatever_it_forwards() -> None:
    assert resolve("203.0.113.9", "x-forwarded-for", "198.51.100.1") == "203.0.113.9"
    assert resolve("203.0.113.9", "forwarded", "for=198.51.100.1") == "203.0.113.9"


def test_no_trusted_proxies_means_the_socket_peer() -> None:
    headers = [(b"x-forwarded-for", b"198.51.100.1")]
    assert str(ClientAddress().resolve("10.0.0.1", headers)) == "10.0.0.1"


def test_the_rightmost_untrusted_hop_is_the_client() -> None:
    # client wrote "1.1.1.1"; proxies 192.168.1.1 and 10.0.0.2 appended what they saw.
    chain = "1.1.1.1, 198.51.100.7, 192.168.1.1, 10.0.0.2"
    assert resolve("10.0.0.3", "x-forwarded-for", chain) == "198.51.100.7"


def test_repeated_headers_are_one_list() -> None:
    assert resolve("10.0.0.3", "x-forwarded-for", "1.1.1.1", "198.51.100.7") == "198.51.100.7"


def test_a_trusted_peer_without_a_header_is_the_client() -> None:
    assert resolve("10.0.0.3") == "10.0.0.3"


def test_only_trusted_hops_give_the_farthest_one() -> None:
    assert resolve("10.0.0.3", "x-forwarded-for", "10.0.0.1, 192.168.1.1") == "10.0.0.1"


def test_an_unparsable_hop_stops_at_the_nearest_known_one() -> None:
    assert resolve("10.0.0.3", "x-forwarded-for", "198.51.100.1, unknown") == "10.0.0.3"
    assert resolve("10.0.0.3", "x-forwarded-for", "garbage, 10.0.0.9") == "10.0.0.9"


def test_forwarded_elements_and_parameters() -> None:
    value = 'for=198.51.100.1;proto=http, for="[2001:db8:cafe::17]:4711";by=10.0.0.3'
    assert resolve("10.0.0.3", "forwarded", value) == "2001:db8:cafe::17"
    assert resolve("10.0.0.3", "forwarded", "FOR=198.51.100.2;proto=https") == "198.51.100.2"
    # An element without `for=` cannot be placed: the nearest known hop stands in.
    assert resolve("10.0.0.3", "forwarded", "for=198.51.100.1, proto=https") == "10.0.0.3"
    assert resolve("10.0.0.3", "forwarded", "for=unknown") == "10.0.0.3"


def test_the_other_header_is_not_read() -> None:
    headers = [(b"forwarded", b"for=198.51.100.1")]
    assert str(ClientAddress(TRUSTED, "x-forwarded-for").resolve("10.0.0.3", headers)) == (
        "10.0.0.3"
    )


def test_a_hostile_chain_is_read_only_so_far() -> None:
    trusted_hops = ", ".join(["10.0.0.1"] * (MAX_HOPS + 100))
    assert resolve("10.0.0.3", "x-forwarded-for", f"198.51.100.1, {trusted_hops}") == "10.0.0.1"


def test_a_peer_without_an_address() -> None:
    assert resolve(None, "x-forwarded-for", "198.51.100.1") is None
    assert resolve("not-an-ip", "x-forwarded-for", "198.51.100.1") is None


def test_trusted_ipv6_proxies_and_mapped_peers() -> None:
    assert resolve("fd00::1", "x-forwarded-for", "2001:db8::5") == "2001:db8::5"
    assert resolve("::ffff:10.0.0.3", "x-forwarded-for", "198.51.100.4") == "198.51.100.4"


def test_bad_networks_name_the_setting() -> None:
    with pytest.raises(ValueError, match=r"TRUSTED_PROXIES: 'ten' is not an IP address or CIDR"):
        parse_networks("10.0.0.0/8, ten", setting="TRUSTED_PROXIES")
    assert parse_networks(" , ", setting="X") == ()


def test_bucket_names_group_ipv6_by_64() -> None:
    assert bucket_name(ipaddress.ip_address("198.51.100.1")) == "198.51.100.1"
    assert bucket_name(ipaddress.ip_address("2001:db8:1:2:3:4:5:6")) == "2001:db8:1:2::/64"
