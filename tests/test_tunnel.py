"""The GRE tunnel interface (point-to-point and multipoint with static
``ip nhrp map`` entries, tunnel key check, counters), its construction from
the seed's configuration, and GRE over ESP transport between two simulated
routers carrying pings."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from scapy.all import GRE, IP, raw, rdpcap
from scapy.layers.ipsec import ESP
from scapy.layers.ipsec import SecurityAssociation as ScapySA

from dmvpn.config.parser import parse_config
from dmvpn.crypto.esp_algorithms import EspAuthAlgorithm, EspTransform, EspTransformId
from dmvpn.ipsec.esp import DropReason, EspDrop, protect, unprotect
from dmvpn.ipsec.sa import EspMode, SaDirection, SecurityAssociation, Selector
from dmvpn.ipsec.sad import SecurityAssociationDatabase
from dmvpn.node.icmp_echo import IcmpEchoEngine
from dmvpn.runtime.sim import LinkParams, Simulator
from dmvpn.sansio import LogEvent, RandomSource, Transmit
from dmvpn.tunnel.interface import GreDelivery, TunnelDrop, TunnelInterface, TunnelKind
from dmvpn.wire.gre import GRE_PROTO_IPV4, GRE_PROTO_NHRP, encode_gre
from dmvpn.wire.ipv4 import IpProto, IPv4Header, decode_ipv4

SEED = Path(__file__).resolve().parents[2] / "shared" / "seed"
HUB_NBMA, SPOKE_NBMA, SPOKE2_NBMA = "172.17.3.1", "172.17.3.2", "172.17.3.3"


def overlay_ping(src: str, dst: str) -> bytes:
    return raw(IP(src=src, dst=dst) / b"\x08\x00\x00\x00payload")


def test_multipoint_static_maps_and_key() -> None:
    hub = TunnelInterface("Tunnel0", address="10.2.2.1/24", source=HUB_NBMA, key=1,
                          static_maps={"10.2.2.2": SPOKE_NBMA})
    packet = overlay_ping("10.2.2.1", "10.2.2.2")
    nbma, gre = hub.encapsulate(packet, "10.2.2.2")  # type: ignore[misc]
    assert nbma == SPOKE_NBMA
    assert raw(GRE(gre)) == gre and GRE(gre).key == 1 and GRE(gre).proto == 0x0800
    assert hub.encapsulate(packet, "10.2.2.3") is None  # no mapping yet
    assert hub.last_drop is TunnelDrop.NO_NBMA and hub.counters.no_nbma_drops == 1
    hub.learn("10.2.2.3", SPOKE2_NBMA)  # as NHRP would
    assert hub.encapsulate(packet, "10.2.2.3")[0] == SPOKE2_NBMA  # type: ignore[index]
    c = hub.counters
    assert (c.output_packets, c.output_bytes, c.output_drops) == (2, 2 * len(packet), 1)

    spoke = TunnelInterface("Tunnel0", address="10.2.2.2/24", source=SPOKE_NBMA, key=1,
                            static_maps={"10.2.2.1": HUB_NBMA})
    assert spoke.decapsulate(HUB_NBMA, gre) == GreDelivery(GRE_PROTO_IPV4, packet, HUB_NBMA)
    nhrp = spoke.decapsulate(HUB_NBMA, encode_gre(GRE_PROTO_NHRP, b"\x00\x01\x08\x00nhrp", key=1))
    assert nhrp is not None and nhrp.protocol == GRE_PROTO_NHRP
    assert (spoke.counters.input_packets, spoke.counters.input_drops) == (2, 0)


@pytest.mark.parametrize("key", [None, 2, 0xFFFFFFFF])
def test_wrong_or_missing_key_is_dropped_and_counted(key: int | None) -> None:
    spoke = TunnelInterface("Tunnel0", address="10.2.2.2/24", source=SPOKE_NBMA, key=1)
    assert spoke.decapsulate(HUB_NBMA, encode_gre(GRE_PROTO_IPV4, b"x" * 40, key=key)) is None
    c = spoke.counters
    assert (c.input_drops, c.key_mismatches, c.input_packets) == (1, 1, 0)
    assert spoke.last_drop is TunnelDrop.KEY_MISMATCH


def test_point_to_point_and_other_drops() -> None:
    with pytest.raises(ValueError, match="destination"):
        TunnelInterface("Tunnel1", address="10.9.9.1/30", source=HUB_NBMA, kind=TunnelKind.POINT_TO_POINT)
    p2p = TunnelInterface("Tunnel1", address="10.9.9.1/30", source=HUB_NBMA, kind=TunnelKind.POINT_TO_POINT,
                          destination=SPOKE_NBMA, sequence=True, checksum=True)
    first = p2p.encapsulate(overlay_ping("10.9.9.1", "8.8.8.8"), "8.8.8.8")
    second = p2p.encapsulate(overlay_ping("10.9.9.1", "8.8.8.8"), "8.8.8.8")
    assert first is not None and second is not None and first[0] == SPOKE_NBMA
    assert GRE(first[1]).sequence_number == 0 and GRE(second[1]).sequence_number == 1
    peer = TunnelInterface("Tunnel1", address="10.9.9.2/30", source=SPOKE_NBMA, kind=TunnelKind.POINT_TO_POINT,
                           destination=HUB_NBMA, sequence=True)
    assert peer.decapsulate(HUB_NBMA, second[1]) is not None
    assert peer.decapsulate(HUB_NBMA, first[1]) is None and peer.last_drop is TunnelDrop.OUT_OF_SEQUENCE
    bad = bytearray(second[1])
    bad[-1] ^= 1
    assert peer.decapsulate(HUB_NBMA, bytes(bad)) is None and peer.last_drop is TunnelDrop.BAD_CHECKSUM
    assert peer.decapsulate(HUB_NBMA, b"\x00") is None and peer.last_drop is TunnelDrop.BAD_GRE
    assert peer.decapsulate(HUB_NBMA, encode_gre(0x86DD, b"v6")) is None
    assert peer.last_drop is TunnelDrop.UNKNOWN_PROTOCOL
    assert peer.counters.input_drops == 4 and peer.counters.sequence_drops == 1


def test_from_seed_configs() -> None:
    hub_cfg = parse_config((SEED / "hub.cfg").read_text(), "hub.cfg")
    spoke_cfg = parse_config((SEED / "spoke.cfg").read_text(), "spoke.cfg")
    assert hub_cfg.config is not None and spoke_cfg.config is not None, (hub_cfg.errors, spoke_cfg.errors)
    hub = TunnelInterface.from_config(hub_cfg.config.interfaces["Tunnel0"])
    assert (hub.kind, hub.key, hub.mtu, str(hub.address), hub.source) == (
        TunnelKind.MULTIPOINT, 1, 1400, "10.2.2.1/24", HUB_NBMA)
    assert hub.static_maps == {}  # the hub learns spokes through NHRP
    spoke = TunnelInterface.from_config(spoke_cfg.config.interfaces["Tunnel0"])
    assert spoke.source == SPOKE_NBMA and spoke.static_maps == {"10.2.2.1": HUB_NBMA}  # ip nhrp nhs ... nbma
    nbma, gre = spoke.encapsulate(overlay_ping("10.2.2.2", "10.2.2.1"), "10.2.2.1")  # type: ignore[misc]
    assert nbma == HUB_NBMA and hub.decapsulate(SPOKE_NBMA, gre) is not None


# ------------------------------------------------------------------ simulation

TF = EspTransform(EspTransformId.ESP_AES_CBC, 128, EspAuthAlgorithm.HMAC_SHA2_256)
KEY_A_TO_B = (bytes(range(16)), bytes(range(100, 132)))
KEY_B_TO_A = (bytes(range(16, 32)), bytes(range(200, 232)))


class GreEspRouter:
    """Test-only engine: pings (IcmpEchoEngine) over an mGRE tunnel whose GRE
    packets are protected by static ESP transport-mode SAs, as DMVPN does."""

    def __init__(self, name: str, random: RandomSource, *, overlay: str, nbma: str, peer_overlay: str,
                 peer_nbma: str, key: int, spi_in: int, spi_out: int,
                 keys_in: tuple[bytes, bytes], keys_out: tuple[bytes, bytes]) -> None:
        self.name = name
        self.nbma = nbma
        self.icmp = IcmpEchoEngine(name, {"Tunnel0": overlay}, random)
        self.tunnel = TunnelInterface("Tunnel0", address=overlay, source=nbma, key=key,
                                      static_maps={peer_overlay: peer_nbma})
        self.sad = SecurityAssociationDatabase(random)
        selector = Selector.hosts(nbma, peer_nbma, IpProto.GRE)
        common = dict(peer=peer_nbma, local=nbma, transform=TF, mode=EspMode.TRANSPORT, selector=selector)
        self.sad.install_pair(
            0.0,
            SecurityAssociation(spi=spi_in, direction=SaDirection.INBOUND, encryption_key=keys_in[0],
                                integrity_key=keys_in[1], **common),  # type: ignore[arg-type]
            SecurityAssociation(spi=spi_out, direction=SaDirection.OUTBOUND, encryption_key=keys_out[0],
                                integrity_key=keys_out[1], **common),  # type: ignore[arg-type]
        )
        self.esp_drops: list[DropReason] = []
        self._tx: list[Transmit] = []

    def receive(self, now: float, iface: str, packet: bytes) -> None:
        try:
            _, inner = unprotect(self.sad, now, packet)
        except EspDrop as exc:
            self.esp_drops.append(exc.reason)
            return
        header, gre = decode_ipv4(inner)
        delivery = self.tunnel.decapsulate(header.src, gre)
        if delivery is not None and delivery.protocol == GRE_PROTO_IPV4:
            self.icmp.receive(now, "Tunnel0", delivery.payload)
        self._pump(now)

    def handle_timer(self, now: float) -> None:
        self.icmp.handle_timer(now)
        self._pump(now)

    def next_deadline(self) -> float | None:
        return self.icmp.next_deadline()

    def admin(self, now: float, command: str) -> str:
        out = self.icmp.admin(now, command)
        self._pump(now)
        return out

    def _pump(self, now: float) -> None:
        for tx in self.icmp.poll_transmit():
            header, _ = decode_ipv4(tx.packet)
            out = self.tunnel.encapsulate(tx.packet, header.dst)
            if out is None:
                continue
            nbma, gre = out
            datagram = IPv4Header(src=self.nbma, dst=nbma, protocol=IpProto.GRE, ttl=255).encode(gre)
            sa = self.sad.outbound_for(nbma)
            assert sa is not None
            self._tx.append(Transmit("Gi0", protect(sa, now, datagram)))

    def poll_transmit(self) -> list[Transmit]:
        tx, self._tx = self._tx, []
        return tx

    def poll_events(self) -> list[LogEvent]:
        return self.icmp.poll_events()


def build_sim(spoke_key: int) -> tuple[Simulator, GreEspRouter, GreEspRouter]:
    sim = Simulator(seed=42)
    hub = GreEspRouter("hub", sim.random_for("hub"), overlay="10.2.2.1/24", nbma=HUB_NBMA,
                       peer_overlay="10.2.2.2", peer_nbma=SPOKE_NBMA, key=1, spi_in=0xB0A0, spi_out=0xA0B0,
                       keys_in=KEY_B_TO_A, keys_out=KEY_A_TO_B)
    spoke = GreEspRouter("spoke", sim.random_for("spoke"), overlay="10.2.2.2/24", nbma=SPOKE_NBMA,
                         peer_overlay="10.2.2.1", peer_nbma=HUB_NBMA, key=spoke_key, spi_in=0xA0B0,
                         spi_out=0xB0A0, keys_in=KEY_A_TO_B, keys_out=KEY_B_TO_A)
    sim.add_node(hub)
    sim.add_node(spoke)
    sim.connect("hub", "Gi0", "spoke", "Gi0", LinkParams(delay=0.005))
    return sim, hub, spoke


def test_pings_cross_gre_over_esp_transport_between_sim_nodes(tmp_path: Path) -> None:
    sim, hub, spoke = build_sim(spoke_key=1)
    pcap = tmp_path / "gre_esp.pcap"
    sim.capture(sim.links[0], pcap)
    sim.admin("hub", "ping 10.2.2.2 repeat 5")
    sim.run(until=30.0)
    sim.close()
    assert "Success rate is 100 percent (5/5)" in sim.admin("hub", "show ping")
    out_hub = hub.sad.outbound_for(SPOKE_NBMA)
    in_spoke = spoke.sad.lookup_inbound(0xA0B0)
    assert out_hub is not None and in_spoke is not None
    assert out_hub.pkts_encaps == in_spoke.pkts_decaps == 5 and out_hub.bytes == in_spoke.bytes
    assert spoke.tunnel.counters.input_packets == 5 and hub.tunnel.counters.input_packets == 5
    # what crossed the wire is ESP (protocol 50) carrying GRE (next header 47)
    frames = rdpcap(str(pcap))
    assert len(frames) == 10 and all(IP in f and f[IP].proto == 50 for f in frames)
    theirs = ScapySA(ESP, spi=0xA0B0, crypt_algo="AES-CBC", crypt_key=KEY_A_TO_B[0],
                     auth_algo="SHA2-256-128", auth_key=KEY_A_TO_B[1])
    first = next(f for f in frames if f[IP].src == HUB_NBMA)
    decrypted = theirs.decrypt(first[IP])
    assert decrypted[IP].proto == 47 and GRE in decrypted and decrypted[GRE].key == 1
    # and Wireshark, given both SAs, verifies every ICV and finds GRE key 1 around the pings
    tshark = shutil.which("tshark")
    assert tshark, "tshark is required for this oracle test"
    uat = []
    for src, dst, spi, (ekey, akey) in ((HUB_NBMA, SPOKE_NBMA, 0xA0B0, KEY_A_TO_B),
                                         (SPOKE_NBMA, HUB_NBMA, 0xB0A0, KEY_B_TO_A)):
        uat += ["-o", f'uat:esp_sa:"IPv4","{src}","{dst}","0x{spi:08x}","AES-CBC [RFC3602]","0x{ekey.hex()}",'
                      f'"HMAC-SHA-256-128 [RFC4868]","0x{akey.hex()}"']
    home = tmp_path / "home"
    home.mkdir()
    out = subprocess.run(
        [tshark, "-r", str(pcap), "-o", "esp.enable_encryption_decode:TRUE",
         "-o", "esp.enable_authentication_check:TRUE", *uat, "-T", "fields",
         "-e", "esp.icv_good", "-e", "gre.key", "-e", "icmp.type"],
        capture_output=True, text=True, env={"HOME": str(home), "PATH": "/usr/bin:/bin"}, timeout=60, check=True,
    ).stdout.split("\n")
    rows = [line.split("\t") for line in out if line]
    assert sorted(rows) == sorted([["1", "0x00000001", "8"]] * 5 + [["1", "0x00000001", "0"]] * 5)


def test_wrong_tunnel_key_between_sim_nodes_drops_and_counts() -> None:
    sim, hub, spoke = build_sim(spoke_key=2)
    sim.admin("hub", "ping 10.2.2.2 repeat 3 timeout 1")
    sim.run(until=30.0)
    assert "Success rate is 0 percent (0/3)" in sim.admin("hub", "show ping")
    in_spoke = spoke.sad.lookup_inbound(0xA0B0)
    assert in_spoke is not None and in_spoke.pkts_decaps == 3  # ESP was fine ...
    c = spoke.tunnel.counters
    assert (c.input_drops, c.key_mismatches, c.input_packets) == (3, 3, 0)  # ... GRE key was not
    assert spoke.tunnel.last_drop is TunnelDrop.KEY_MISMATCH and hub.esp_drops == []
