"""Every NHRP packet type our engines send, written by the lab's pcap writer
inside GRE (key 7) inside IPv4 as IOS sends it (TOS 0xC0, TTL 255), is
decoded by tshark with no expert warning and the field values we meant."""

from __future__ import annotations

import shutil
import subprocess
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

from dmvpn.runtime.sim.pcap import PcapWriter, mac_for
from dmvpn.wire.gre import GRE_PROTO_NHRP, encode_gre
from dmvpn.wire.ipv4 import header_template
from dmvpn.wire.nhrp import (
    AuthenticationExtension,
    Cie,
    CieListExtension,
    NhrpPacket,
    PacketType,
    decode_nhrp,
)
from nhrp_harness import Net, ipv4_packet, lab

A = IPv4Address
FIELDS = (
    "nhrp.hdr.op.type", "nhrp.hdr.hopcnt", "nhrp.hdr.pktsz", "nhrp.hdr.extoff", "nhrp.flags", "nhrp.reqid",
    "nhrp.src.nbma.addr", "nhrp.src.prot.addr", "nhrp.dst.prot.addr", "nhrp.err.code", "nhrp.code",
    "nhrp.prefix", "nhrp.mtu", "nhrp.htime", "nhrp.client.nbma.addr", "nhrp.client.prot.addr", "nhrp.ext.type",
    "nhrp.ext.c", "nhrp.auth_ext.spi", "nhrp.hdr.chksum.status", "ip.dsfield", "ip.ttl", "gre.key", "gre.proto",
    "_ws.expert",
)  # fmt: skip


def every_packet_type(tmp: Path) -> tuple[Net, Path]:
    """A run that sends all eight types: registration, redirect, shortcut
    resolution (forwarded by the hub), an unreachable target (Error
    Indication 6), a purge on prefix loss and its reply."""
    net = lab((2, 3))
    net.run_until(1)
    hub, s2, s3 = (next(e for e in net.engines.values() if e.node == n) for n in ("hub", "spoke2", "spoke3"))
    net.call(hub, lambda now: hub.hairpin(now, A("172.16.0.2"), ipv4_packet("192.168.2.10", "192.168.3.10")))
    net.run_until(3)
    net.call(s2, lambda now: s2.resolve(now, A("10.0.0.99")))
    net.run_until(4)
    net.call(s3, lambda now: s3.withdraw(now, IPv4Network("192.168.3.0/24")))
    net.run_until(5)
    path = tmp / "nhrp.pcap"
    with path.open("wb") as f:
        writer = PcapWriter(f)
        for w in net.wire:
            gre = encode_gre(GRE_PROTO_NHRP, w.raw, key=7)
            datagram = header_template(str(w.src), str(w.dst), 47, 255, 0xC0).encode(gre)
            writer.record(w.time, mac_for(str(w.src), "wan"), mac_for(str(w.dst), "wan"), datagram)
    return net, path


def tshark_rows(path: Path) -> list[dict[str, list[str]]]:
    tshark = shutil.which("tshark")
    assert tshark is not None, "tshark is not installed (apt-get install tshark)"
    args = [tshark, "-r", str(path), "-T", "fields", "-E", "separator=/t", "-E", "occurrence=a", "-E", "aggregator=|"]
    for f in FIELDS:
        args += ["-e", f]
    out = subprocess.run(args, capture_output=True, text=True, check=True, timeout=60).stdout
    rows = []
    for line in out.splitlines():
        values = line.split("\t")
        rows.append({f: (v.split("|") if v else []) for f, v in zip(FIELDS, values, strict=True)})
    return rows


def _cies(pkt: NhrpPacket) -> list[Cie]:
    out = list(pkt.cies)
    for ext in pkt.extensions:
        if isinstance(ext, CieListExtension):
            out.extend(ext.cies)
    return out


def expected(pkt: NhrpPacket) -> dict[str, list[str]]:
    """The values tshark should print for ``pkt`` (and, for an Error
    Indication, the packet it carries), in document order."""
    packets = [pkt]
    if pkt.type == PacketType.ERROR_INDICATION:
        packets.append(decode_nhrp(pkt.payload))
    want: dict[str, list[str]] = {f: [] for f in FIELDS}
    for p in packets:
        want["nhrp.hdr.op.type"].append(str(p.type))
        want["nhrp.hdr.hopcnt"].append(str(p.hop_count))
        want["nhrp.src.nbma.addr"].append(str(A(p.src_nbma)))
        want["nhrp.src.prot.addr"].append(str(A(p.src_protocol)))
        want["nhrp.dst.prot.addr"].append(str(A(p.dst_protocol)))
        if p.type == PacketType.ERROR_INDICATION:
            want["nhrp.err.code"].append(str(p.error_code))
        elif p.type != PacketType.TRAFFIC_INDICATION:
            want["nhrp.flags"].append(f"0x{p.flags:04x}")
            want["nhrp.reqid"].append(f"0x{p.request_id:08x}")
        for cie in _cies(p):
            want["nhrp.code"].append(str(cie.code))
            want["nhrp.prefix"].append(str(cie.prefix_length))
            want["nhrp.mtu"].append(str(cie.mtu))
            want["nhrp.htime"].append(str(cie.holding_time))
            if cie.client_nbma:
                want["nhrp.client.nbma.addr"].append(str(A(cie.client_nbma)))
            if cie.client_protocol:
                want["nhrp.client.prot.addr"].append(str(A(cie.client_protocol)))
        for ext in p.extensions:
            want["nhrp.ext.type"].append(f"0x{ext.type:04x}")
            want["nhrp.ext.c"].append("1" if ext.compulsory else "0")
            if isinstance(ext, AuthenticationExtension):
                want["nhrp.auth_ext.spi"].append(str(ext.auth_type))
    return want


def test_tshark_decodes_every_type_we_send(tmp_path: Path) -> None:
    net, path = every_packet_type(tmp_path)
    assert {w.packet.type for w in net.wire} == set(range(1, 9))
    rows = tshark_rows(path)
    assert len(rows) == len(net.wire)
    for row, w in zip(rows, net.wire, strict=True):
        where = f"frame {rows.index(row) + 1} ({PacketType(w.packet.type).name})"
        assert row["_ws.expert"] == [], f"{where}: tshark expert info {row['_ws.expert']}"
        assert row["nhrp.hdr.chksum.status"][:1] == ["1"], f"{where}: checksum not good"
        outer = [row[f][:1] for f in ("ip.dsfield", "ip.ttl", "gre.key", "gre.proto")]
        assert outer == [["0xc0"], ["255"], ["0x00000007"], ["0x2001"]], where
        assert row["nhrp.hdr.pktsz"][0] == str(len(w.raw)), where
        assert row["nhrp.hdr.extoff"][0] == str(int.from_bytes(w.raw[14:16], "big")), where
        for name, values in expected(w.packet).items():
            if name.startswith("nhrp.") and name not in ("nhrp.hdr.pktsz", "nhrp.hdr.extoff", "nhrp.hdr.chksum.status"):
                assert row[name] == values, f"{where}: {name} tshark {row[name]} we meant {values}"
