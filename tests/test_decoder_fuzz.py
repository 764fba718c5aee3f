"""Every decoder, fed hostile input by hypothesis, answers with a value or
its documented error (DecodeError; CaptureError for captures; EspDrop for
ESP; located errors for config and scenario text), nothing else; then live
engines fed the same kind of input still converge.

Decoders: wire/ipv4 (decode_ipv4, ipv4_lengths), wire/udp, wire/icmp,
wire/gre, wire/esp (parse_esp_header, split_trailer), ipsec/esp
(decapsulate, unprotect), wire/isakmp (decode_header, decode_message,
classify_udp4500, strip_non_esp_marker; test_isakmp_fuzz.py covers
decode_message and decrypt_message at length), wire/pcap_reader
(parse_capture, ipv4_packet, udp_datagram), the config parser and the
scenario parser on mutated text.

The convergence half: a seed hub and spoke (Router nodes in the sim, 120 s
lifetimes) bring their tunnel up, then receive mutated copies of the very
packets they exchanged (IPv4, UDP, ISAKMP, ESP with real SPIs, GRE/NHRP) on
their WAN interface; afterwards their SAs are up, every probe is answered
and a time rekey still completes with no probe lost.
"""

from __future__ import annotations

import contextlib
import struct
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dmvpn.config import parse_config
from dmvpn.ipsec.esp import EspDrop, decapsulate, unprotect
from dmvpn.lab.scenario import ScenarioError, parse_scenario
from dmvpn.runtime.sim.pcap import PcapWriter
from dmvpn.wire.errors import DecodeError
from dmvpn.wire.esp import parse_esp_header, split_trailer
from dmvpn.wire.gre import decode_gre
from dmvpn.wire.icmp import decode_icmp
from dmvpn.wire.ipv4 import decode_ipv4, ipv4_lengths
from dmvpn.wire.isakmp import classify_udp4500, decode_header, decode_message, strip_non_esp_marker
from dmvpn.wire.pcap_reader import CaptureError, ipv4_packet, parse_capture, udp_datagram
from dmvpn.wire.udp import decode_udp
from router_lab import HUB_NBMA, HUB_TUN, SPOKE_NBMA, SPOKE_TUN, WAN, build, hub_text, results, spoke_text

PCAPS = Path(__file__).resolve().parents[2] / "shared" / "oracles" / "pcaps"
LIFE_120 = " set security-association lifetime seconds 120\n"
FAST = settings(max_examples=300, derandomize=True, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow])


class Recorder:
    """A link tap keeping every packet delivered (the seeds for mutation)."""

    def __init__(self) -> None:
        self.packets: list[bytes] = []

    def record(self, _now: float, _src: bytes, _dst: bytes, packet: bytes) -> None:
        self.packets.append(packet)


def live_pair():
    """A hub and spoke with their tunnel up and a recording of their traffic."""
    sim, hub, spoke, wan = build(seed=4, hub=hub_text(LIFE_120), spoke=spoke_text(LIFE_120))
    tap = Recorder()
    wan.taps.append(tap)
    sim.admin("SPOKE1", f"ping {HUB_TUN} repeat 5")
    sim.run(10.0)
    sim.admin("HUB", f"ping {SPOKE_TUN} repeat 3")
    sim.run(20.0)
    assert results(spoke) == ".!!!!" and results(hub) == "!!!"
    wan.taps.remove(tap)
    return sim, hub, spoke, wan, tuple(tap.packets)


SIM, HUB, SPOKE, LINK, TRAFFIC = live_pair()
ESP_TRAFFIC = [p for p in TRAFFIC if p[9] == 50]
IKE_TRAFFIC = [p[28:] for p in TRAFFIC if p[9] == 17]
assert len(ESP_TRAFFIC) >= 8 and len(IKE_TRAFFIC) >= 9


def mutated(data: st.DataObject, seed: bytes, header: int = 0) -> bytes:
    """``seed`` with a run of bytes overwritten, a cut and an insertion;
    ``header`` bytes at the front are kept when set (a valid IPv4 header)."""
    b = bytearray(seed)
    at = data.draw(st.integers(header, max(header, len(b))))
    blob = data.draw(st.binary(max_size=24))
    b[at:at + len(blob)] = blob
    if data.draw(st.booleans()):
        del b[data.draw(st.integers(header, max(header, len(b)))):]
    if data.draw(st.booleans()):
        at = data.draw(st.integers(header, max(header, len(b))))
        b[at:at] = data.draw(st.binary(min_size=1, max_size=16))
    return bytes(b)


def fix_ipv4(packet: bytes) -> bytes:
    """Keep a mutated packet deliverable: its IPv4 total length and header
    checksum recomputed (so the mutation reaches the layer above)."""
    if len(packet) < 20:
        return packet
    from dmvpn.wire.ipv4 import internet_checksum
    head = bytearray(packet[:20])
    head[0], head[2:4], head[10:12] = 0x45, struct.pack("!H", len(packet)), b"\0\0"
    head[10:12] = struct.pack("!H", internet_checksum(bytes(head)))
    return bytes(head) + packet[20:]


# ----------------------------------------------------------- the decoders
@FAST
@given(st.data())
def test_ipv4_udp_icmp_gre_decoders(data) -> None:
    packet = mutated(data, data.draw(st.sampled_from(TRAFFIC)))
    for verify in (True, False):
        with contextlib.suppress(DecodeError):
            ipv4_lengths(packet, verify_checksum=verify)
        with contextlib.suppress(DecodeError):
            decode_ipv4(packet, verify_checksum=verify)
    body = packet[20:]
    for decode in (lambda: decode_udp(body, "172.17.3.1", "172.17.3.2"), lambda: decode_udp(body),
                   lambda: decode_icmp(body), lambda: decode_icmp(body, verify_checksum=False),
                   lambda: decode_gre(body), lambda: parse_esp_header(body),
                   lambda: split_trailer(body), lambda: split_trailer(body, data.draw(st.integers(0, 64)))):
        with contextlib.suppress(DecodeError):
            decode()


@FAST
@given(st.data())
def test_isakmp_header_and_udp4500_decoders(data) -> None:
    message = mutated(data, data.draw(st.sampled_from(IKE_TRAFFIC)))
    for payload in (message, b"\0\0\0\0" + message, b"\xff", message[:7]):
        for decode in (decode_header, decode_message, classify_udp4500, strip_non_esp_marker):
            with contextlib.suppress(DecodeError):
                decode(payload)


@FAST
@given(st.data())
def test_esp_decapsulate_and_unprotect_on_live_sas(data) -> None:
    """Mutated copies of real ESP packets, against the SAs that made them:
    refused with EspDrop or DecodeError (never accepted: a mutation breaks
    the ICV, an unchanged copy is a replay)."""
    packet = mutated(data, data.draw(st.sampled_from(ESP_TRAFFIC)), header=20)
    for node in (HUB, SPOKE):
        try:
            unprotect(node.sad, SIM.now, fix_ipv4(packet))
            raise AssertionError("a mutated or replayed ESP packet was accepted")
        except (EspDrop, DecodeError):
            pass
        for sa in node.sad.all():
            try:
                decapsulate(sa, SIM.now, packet[20:])
                raise AssertionError(f"decapsulate accepted a mutated packet on SPI {sa.spi:#x}")
            except (EspDrop, DecodeError):
                pass


def _capture_bytes() -> bytes:
    import io
    out = io.BytesIO()
    w = PcapWriter(out)
    for i, p in enumerate(TRAFFIC[:12]):
        w.record(float(i), b"\x02" * 6, b"\x04" * 6, p)
    return out.getvalue()


CAPTURES = [_capture_bytes()] + [p.read_bytes() for p in sorted((PCAPS / "tcpdump").glob("*nhrp*.pcap"))[:2]]


@FAST
@given(st.data())
def test_pcap_reader(data) -> None:
    raw = mutated(data, data.draw(st.sampled_from(CAPTURES)))
    try:
        for frame in parse_capture(raw, "fuzz.pcap"):
            ipv4_packet(frame)
            with contextlib.suppress(DecodeError):
                udp_datagram(frame)
    except CaptureError:
        pass


CONFIG = hub_text(LIFE_120)
SCENARIO = (Path(__file__).resolve().parents[1] / "src" / "dmvpn" / "lab" / "data" / "seed.toml").read_text()


@settings(max_examples=150, derandomize=True, deadline=None, database=None)
@given(st.data())
def test_config_parser_on_mutated_text(data) -> None:
    text = mutated(data, CONFIG.encode()).decode("utf-8", errors="replace")
    result = parse_config(text, "fuzz.cfg")
    for err in result.errors:
        assert str(err).startswith("fuzz.cfg:") and "\n" not in str(err), str(err)


@settings(max_examples=150, derandomize=True, deadline=None, database=None)
@given(st.data())
def test_scenario_parser_on_mutated_text(data) -> None:
    text = mutated(data, SCENARIO.encode()).decode("utf-8", errors="replace")
    base = Path(__file__).resolve().parents[1] / "src" / "dmvpn" / "lab" / "data"
    try:
        parse_scenario(text, "fuzz.toml", base)
    except ScenarioError as err:
        assert str(err).startswith("fuzz.toml") and "\n" not in str(err), str(err)


# ----------------------------------------------------------- live engines
def test_router_pair_converges_after_hostile_packets() -> None:
    """Mutated packets of every kind the pair exchanged, into both routers'
    WAN: afterwards SAs up, probes answered, a time rekey with no loss."""
    sim, hub, spoke, _, traffic = live_pair()
    fed = {"HUB": 0, "SPOKE1": 0}

    @settings(max_examples=1500, derandomize=True, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(st.data())
    def feed(data) -> None:
        seed = data.draw(st.sampled_from(traffic))
        packet = fix_ipv4(mutated(data, seed, header=20))
        target = "HUB" if packet[16:20] == bytes(map(int, HUB_NBMA.split("."))) else "SPOKE1"
        if data.draw(st.booleans()):      # spoofed from elsewhere too
            packet = packet[:12] + bytes([172, 17, 3, data.draw(st.integers(3, 254))]) + packet[16:]
            packet = fix_ipv4(packet)
        sim.deliver(target, WAN, packet)
        fed[target] += 1
        sim.run(sim.now + 0.02)

    feed()
    assert fed["HUB"] > 100 and fed["SPOKE1"] > 100, fed
    assert sim.now < 100.0, "the first rekey must come after the fuzzing"
    assert len(hub.sad.all()) == 2 and len(spoke.sad.all()) == 2
    assert hub.sad.outbound_for(SPOKE_NBMA).spi in {sa.spi for sa in spoke.sad.all()}
    assert spoke.sad.outbound_for(HUB_NBMA).spi in {sa.spi for sa in hub.sad.all()}
    start = sim.now
    sim.admin("SPOKE1", f"ping {HUB_TUN} repeat 300 interval 1 timeout 2")
    sim.run(start + 310.0)
    assert results(spoke) == "!" * 300                          # probes answered, rekeys included
    installs = [e.time for e in sim.events if e.category == "ipsec" and e.fields.get("what") == "installed"
                and e.time > start]
    assert len(installs) >= 4, installs                          # >= 2 rekeys, each a pair on each side
    assert any(e.fields.get("reason") == "time rekey" for e in sim.events
               if e.category == "ipsec" and e.time > start and e.fields.get("what") == "installed")
