"""Our engine, configured as the routers in tcpdump's captures were, fed the
packets Cisco sent, answers with the bytes Cisco answered with: the
captures are the oracle for what we build, not only for what we decode."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network
from typing import Any

from dmvpn.config.model import NhrpServer
from dmvpn.nhrp.cache import CacheEntry
from dmvpn.nhrp.engine import NhrpEngine
from dmvpn.nhrp.events import SendNhrp
from dmvpn.nhrp.settings import NhrpSettings
from dmvpn.nhrp.states import EntryEvent, EntryState
from dmvpn.runtime.randomness import SeededRandomSource
from dmvpn.wire.nhrp import decode_nhrp
from test_nhrp_wire import TCPDUMP, gre_nhrp

A = IPv4Address


def engine(name: str, first: int = 1, **kw: Any) -> NhrpEngine:
    settings = NhrpSettings(interface="Tunnel0", **kw)
    return NhrpEngine(name, settings, SeededRandomSource(1, name), first_request_id=first)


def sent(e: NhrpEngine) -> list[SendNhrp]:
    return [o for o in e.poll_outputs() if isinstance(o, SendNhrp)]


def test_spoke_registration_request_is_ciscos() -> None:
    """NHRP_registration frame 1: spoke 155.1.0.1 (NBMA 169.254.100.1) to NHS
    155.1.0.5, GRE key 2 (MTU 17912), password NHRPAUTH."""
    frames = gre_nhrp(TCPDUMP / "NHRP_registration.pcap")
    spoke = engine(
        "spoke",
        tunnel_address=A("155.1.0.1"),
        nbma_address=A("169.254.100.1"),
        nhs=(NhrpServer(A("155.1.0.5"), A("169.254.100.5")),),
        authentication=b"NHRPAUTH",
        mtu=17912,
    )
    spoke.start(0.0)
    (out,) = sent(spoke)
    assert out.nbma == A("169.254.100.5")
    assert out.packet == frames[0][2]


def test_hub_registration_reply_is_ciscos() -> None:
    """NHRP_registration, nhrp.pcapng (a no-key tunnel, MTU 17916, password
    OTUS) and NHRP-responder-address, frames 1-2: the same request, the same
    reply."""
    cases = [
        ("NHRP_registration.pcap", "155.1.0.5", "169.254.100.5", "169.254.100.1", b"NHRPAUTH", 17912, None),
        ("nhrp.pcapng", "10.65.0.1", "100.1.0.14", "100.1.2.27", b"OTUS", 17916, None),
        # a hub with "ip nhrp responder" naming an interface addressed 155.1.146.6
        ("NHRP-responder-address.pcap", "155.1.0.6", "6.6.6.6", "155.1.79.2", b"NHRPAUTH", 17912, A("155.1.146.6")),
    ]
    for capture, tunnel, nbma, spoke_nbma, password, mtu, responder in cases:
        frames = gre_nhrp(TCPDUMP / capture)
        hub = engine("hub", tunnel_address=A(tunnel), nbma_address=A(nbma), authentication=password, mtu=mtu,
                     responder_address=responder)  # fmt: skip
        hub.receive(0.0, A(spoke_nbma), A(nbma), frames[0][2])
        (out,) = sent(hub)
        assert (out.nbma, out.packet) == (A(spoke_nbma), frames[1][2]), capture


def test_phase3_packets_are_ciscos() -> None:
    """nhrp-trace (GRE key 1000, MTU 1514, password "secret"): the hub's
    Traffic Indication (1), the spoke's Resolution Request (2), the hub's
    forwarded request (3) and the egress spoke's direct reply (4)."""
    frames = [raw for _n, _k, raw in gre_nhrp(TCPDUMP / "nhrp-trace.pcap")]
    common: dict[str, Any] = {"authentication": b"secret", "mtu": 1514, "shortcut": True}
    hub = engine("hub", tunnel_address=A("10.255.255.1"), nbma_address=A("192.168.200.1"), redirect=True, **common)
    spoke3 = engine(
        "spoke3",
        tunnel_address=A("10.255.255.3"),
        nbma_address=A("192.168.200.3"),
        nhs=(NhrpServer(A("10.255.255.1"), A("192.168.200.1")),),
        first=4,  # its registration takes ID 4, the resolution 5 as in the capture
        **common,
    )
    spoke2 = engine("spoke2", tunnel_address=A("10.255.255.2"), nbma_address=A("192.168.200.2"), **common)
    # The hub knows spoke 2 (its registration is not in the capture).
    known = CacheEntry(IPv4Network("10.255.255.2/32"), A("10.255.255.2"), A("192.168.200.2"), EntryState.GONE, 0, 7200)
    hub.cache.create(known, EntryEvent.REGISTER)
    data = decode_nhrp(frames[0]).payload  # the data packet's IPv4 header + 8 bytes
    hub.hairpin(1.0, A("192.168.200.3"), data + bytes(72))  # the rest of the 100-byte ping
    (ti,) = sent(hub)
    assert (ti.nbma, ti.packet) == (A("192.168.200.3"), frames[0])

    spoke3.start(0.0)
    sent(spoke3)  # its registration
    spoke3.receive(1.0, A("192.168.200.1"), A("192.168.200.3"), frames[0])
    (req,) = sent(spoke3)
    assert (req.nbma, req.packet) == (A("192.168.200.1"), frames[1])

    hub.receive(1.1, A("192.168.200.3"), A("192.168.200.1"), frames[1])
    (fwd,) = sent(hub)
    assert (fwd.nbma, fwd.packet) == (A("192.168.200.2"), frames[2])

    spoke2.receive(1.2, A("192.168.200.1"), A("192.168.200.2"), frames[2])
    (rep,) = sent(spoke2)
    assert (rep.nbma, rep.packet) == (A("192.168.200.3"), frames[3])
