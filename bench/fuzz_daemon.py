"""Fuzz a running hub daemon in network namespaces with hostile packets.

The seed's hub and spoke run as real daemons (``dmvpn netlab``'s machinery,
namespaces ``dmvpn-fz<pid>-hub`` / ``-spoke``); the spoke keeps a real
IKE/ESP tunnel up. From the spoke's namespace one raw socket sends prebuilt,
structure-aware mutations to the hub's underlay address, in batches of one
protocol each:

* ``isakmp``: IKEv1 messages captured from the live exchange and from the
  project's pcaps, with header fields (cookies, next payload, version,
  exchange type, flags, message ID, length) and payload headers (next
  payload, length) mutated, truncated, spliced and bit-flipped; UDP 500;
* ``ikev2``: IKEv2 headers and payloads (the daemon speaks IKEv1 only: each
  must be dropped cleanly) on UDP 500 and, behind the non-ESP marker, 4500;
* ``esp``: protocol 50: replays of captured valid packets, the hub's real
  SPIs with bad ICVs, truncations, foreign SPIs;
* ``esp-udp``: the same inside UDP 4500, keepalives, non-ESP-marker junk;
* ``gre``: GRE in clear (keys, flags, versions) carrying IPv4 and NHRP
  (GRE protocol 0x2001, payloads from the tcpdump NHRP captures);
* ``control``: the hub's control socket: malformed, huge, binary and
  half-written requests and many connections at once.

After every batch the tool waits for the hub to drain its sockets, reads
``show runtime`` (packets the daemon processed), checks the daemon is alive,
pings across the tunnel (the kernel in the spoke's namespace to the hub's
Tunnel0 address) and drains a capture of every frame the hub sends on its
underlay: each must be ISAKMP, ESP or UDP 4500. At the end it reports as
JSON: packets sent and processed per protocol, crashes, tracebacks in the
logs, the hub's RSS before and after, each ping, anything in clear.

Bounded by ``--packets`` and ``--max-seconds``; it removes every namespace
and process it made, by PID, on any exit (errors, Ctrl-C, SIGTERM). It takes
``/tmp/dmvpn-netns.lock`` itself unless told (``--lock-held``) that its
caller holds it. Root only.

    PYTHONPATH=src .venv/bin/python bench/fuzz_daemon.py --packets 1000000
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import fcntl
import json
import os
import random
import re
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dmvpn.lab.netlab import TUN_NAME, Netlab, NetlabState, NodeState, seed_pair_scenario
from dmvpn.lab.scenario import parse_scenario
from dmvpn.runtime.real.control import MAX_COMMAND, ControlClientError, send_command
from dmvpn.wire.errors import DecodeError
from dmvpn.wire.pcap_reader import ipv4_packet, read_frames

ROOT = Path(__file__).resolve().parents[1]
PCAPS = Path("/work/shared/oracles/pcaps")
LOCK = "/tmp/dmvpn-netns.lock"
HUB, SPOKE = "172.17.3.1", "172.17.3.2"
HUB_TUN = "10.2.2.1"
WAN_DEV = "gi0-0-2"
PACKET_PROTOCOLS = ("isakmp", "ikev2", "esp", "esp-udp", "gre")
PROTOCOLS = (*PACKET_PROTOCOLS, "control")
POOL = 4096          # distinct mutated packets prebuilt per protocol
CLONE_NEWNET = 0x40000000
ETH_P_ALL = 0x0003
SO_ATTACH_FILTER = 26
PACKET_OUTGOING = 4
SKF_AD_PKTTYPE = -0x1000 + 4
_LIBC = ctypes.CDLL(None, use_errno=True)


# --------------------------------------------------------------- namespaces
@contextlib.contextmanager
def in_netns(ns: str) -> Iterator[None]:
    """Run the body (socket creation) in namespace ``ns``; sockets made there
    stay there. setns(2) applies to the calling thread only."""
    with open("/proc/self/ns/net") as own, open(f"/run/netns/{ns}") as target:
        if _LIBC.setns(target.fileno(), CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {ns}")
        try:
            yield
        finally:
            if _LIBC.setns(own.fileno(), CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back")




def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def tun_rx(ns: str) -> int:
    """Packets the daemon wrote into its TUN device (the kernel's rx count)."""
    out = subprocess.run(["ip", "-n", ns, "-j", "-s", "link", "show", "dev", TUN_NAME],
                         capture_output=True, text=True, timeout=30)
    return int(json.loads(out.stdout)[0]["stats64"]["rx"]["packets"])


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


# --------------------------------------------------------------- capture
def _outgoing_filter() -> tuple[bytes, ctypes.Array[ctypes.c_char]]:
    """Classic BPF accepting only frames the host sends (pkttype OUTGOING):
    the ``sock_fprog`` and the buffer it points to (keep it alive)."""
    insns = [(0x20, 0, 0, SKF_AD_PKTTYPE & 0xFFFFFFFF),   # ld [pkttype]
             (0x15, 0, 1, PACKET_OUTGOING),              # jeq #4
             (0x06, 0, 0, 0x40000),                      # ret #262144
             (0x06, 0, 0, 0)]                            # ret #0
    prog = b"".join(struct.pack("HBBI", *i) for i in insns)
    buf = ctypes.create_string_buffer(prog)
    return struct.pack("HL", len(insns), ctypes.addressof(buf)), buf


class Capture:
    """An AF_PACKET socket on the hub's underlay device (inside its namespace)."""

    def __init__(self, ns: str, outgoing_only: bool) -> None:
        with in_netns(ns):
            self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
            if outgoing_only:
                fprog, self._filter = _outgoing_filter()
                self.sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
            with contextlib.suppress(OSError):
                self.sock.setsockopt(socket.SOL_SOCKET, 33, 64 << 20)  # SO_RCVBUFFORCE
            self.sock.bind((WAN_DEV, 0))
        self.sock.setblocking(False)

    def drain(self) -> list[tuple[bytes, int]]:
        """(IPv4 packet or b"" for non-IPv4, pkttype) of every frame queued."""
        out: list[tuple[bytes, int]] = []
        while True:
            try:
                data, addr = self.sock.recvfrom(65535)
            except BlockingIOError:
                return out
            out.append((data[14:] if data[12:14] == b"\x08\x00" else b"", addr[2]))

    def close(self) -> None:
        self.sock.close()


def classify_outgoing(packet: bytes) -> str:
    """``isakmp`` / ``esp`` / ``esp-udp`` for what may leave the hub, else a
    description of the packet in clear."""
    if len(packet) < 20:
        return "short"
    proto, ihl = packet[9], (packet[0] & 15) * 4
    if proto == 50:
        return "esp"
    if proto == 17 and len(packet) >= ihl + 4:
        sport, dport = struct.unpack_from("!HH", packet, ihl)
        if 500 in (sport, dport):
            return "isakmp"
        if 4500 in (sport, dport):
            return "esp-udp"
        return f"udp {sport}->{dport}"
    if proto == 1 and len(packet) >= ihl + 2:
        return f"icmp type {packet[ihl]} code {packet[ihl + 1]}"
    return f"ip proto {proto}"


# --------------------------------------------------------------- packets
def ipv4(src: str, dst: str, proto: int, payload: bytes, ident: int = 0) -> bytes:
    """An IPv4 header for IP_HDRINCL (the kernel fills length and checksum)."""
    return struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, 0, 64, proto, 0,
                       socket.inet_aton(src), socket.inet_aton(dst)) + payload


def udp(sport: int, dport: int, payload: bytes) -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def pcap_payloads(pattern: str, want: Callable[[bytes], bytes | None]) -> list[bytes]:
    """``want(ipv4 packet)`` for every frame of the pcaps matching ``pattern``."""
    out = []
    for path in sorted(PCAPS.glob(pattern)):
        try:
            for frame in read_frames(path):
                ip = ipv4_packet(frame)
                if ip is not None and len(ip) >= 20:
                    got = want(ip[: max(20, min(len(ip), struct.unpack_from("!H", ip, 2)[0]))])
                    if got:
                        out.append(got)
        except (DecodeError, ValueError, OSError):
            continue
    return out


def udp_to(ports: tuple[int, ...]) -> Callable[[bytes], bytes | None]:
    def want(ip: bytes) -> bytes | None:
        ihl = (ip[0] & 15) * 4
        if ip[9] != 17 or len(ip) < ihl + 8:
            return None
        if struct.unpack_from("!H", ip, ihl + 2)[0] not in ports:
            return None
        body = ip[ihl + 8:]
        return body[4:] if ports == (4500,) and body[:4] == b"\0\0\0\0" else body
    return want


def proto_is(proto: int) -> Callable[[bytes], bytes | None]:
    def want(ip: bytes) -> bytes | None:
        return ip[(ip[0] & 15) * 4:] if ip[9] == proto else None
    return want


def flip(rng: random.Random, b: bytearray, n: int = 1) -> None:
    for _ in range(n):
        if b:
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)


def mutate_isakmp(rng: random.Random, seed: bytes, cookies: list[bytes]) -> bytes:
    """One structure-aware mutation of an ISAKMP message (RFC 2408 3.1, 3.2)."""
    b = bytearray(seed)
    if len(b) < 28:
        b += rng.randbytes(28 - len(b))
    for _ in range(rng.randint(1, 3)):
        if len(b) < 28:     # truncated by an earlier step: leave it so
            break
        op = rng.randrange(12)
        if op == 0:
            b[0:16] = rng.choice(cookies) if cookies and rng.random() < 0.5 else rng.randbytes(16)
        elif op == 1:
            b[8:16] = bytes(8)                                      # responder cookie zero
        elif op == 2:
            b[16] = rng.choice([0, 1, 2, 4, 5, 8, 10, 11, 12, 13, 14, 15, 20, 130, 255, rng.randrange(256)])
        elif op == 3:
            b[17] = rng.choice([0x10, 0x11, 0x20, 0x00, 0xF0, rng.randrange(256)])
        elif op == 4:
            b[18] = rng.choice([0, 1, 2, 4, 5, 6, 32, 33, 34, 255, rng.randrange(256)])
        elif op == 5:
            b[19] = rng.randrange(256)                              # flags, incl. encryption bit
        elif op == 6:
            b[20:24] = rng.choice([bytes(4), b"\xff" * 4, rng.randbytes(4)])
        elif op == 7:
            b[24:28] = rng.choice([0, 27, 28, len(b), len(b) + 1, 0xFFFFFFFF,
                                   rng.randrange(1 << 32)]).to_bytes(4, "big")
        elif op == 8 and len(b) >= 32:                              # a payload header
            offs = _payload_offsets(b)
            at = rng.choice(offs) if offs else 28
            if at + 4 <= len(b):
                if rng.random() < 0.5:
                    b[at] = rng.randrange(256)
                else:
                    b[at + 2:at + 4] = rng.choice([0, 1, 3, 4, 0xFFFF, rng.randrange(65536)]).to_bytes(2, "big")
        elif op == 9:
            del b[rng.randrange(len(b) + 1):]
        elif op == 10:
            at = rng.randrange(len(b) + 1)
            b[at:at] = rng.randbytes(rng.randint(1, 64))
        else:
            flip(rng, b, rng.randint(1, 8))
    if rng.random() < 0.5 and len(b) >= 28:                         # keep the length honest half the time
        b[24:28] = len(b).to_bytes(4, "big")
    return bytes(b)


def _payload_offsets(b: bytearray) -> list[int]:
    offs: list[int] = []
    at = 28
    while at + 4 <= len(b) and len(offs) < 32:
        offs.append(at)
        length = int.from_bytes(b[at + 2:at + 4], "big")
        if length < 4:
            break
        at += length
    return offs


def ikev2_message(rng: random.Random, seeds: list[bytes]) -> bytes:
    """An IKEv2 header (RFC 7296 3.1) over seed or random payloads."""
    if seeds and rng.random() < 0.6:
        b = bytearray(rng.choice(seeds))
        if len(b) < 28:
            b += rng.randbytes(28 - len(b))
        if rng.random() < 0.5:
            flip(rng, b, rng.randint(1, 4))
        b[17] = 0x20
        return bytes(b)
    body = bytearray()
    for _ in range(rng.randint(0, 4)):
        data = rng.randbytes(rng.randint(0, 60))
        kind = rng.choice([33, 34, 35, 40, 41, 43, 44, 46, 0])
        body += bytes([kind, 0]) + (4 + len(data)).to_bytes(2, "big") + data
    head = (rng.randbytes(8) + rng.choice([bytes(8), rng.randbytes(8)])
            + bytes([rng.choice([33, 34, 46, 41, 0]), rng.choice([0x20, 0x21, 0x2F]),
                     rng.choice([34, 35, 36, 37, 43, rng.randrange(256)]), rng.choice([0x08, 0x20, 0x28, 0])])
            + rng.randbytes(4) + (28 + len(body)).to_bytes(4, "big"))
    return head + bytes(body)


def esp_packet(rng: random.Random, valid: list[bytes], spis: list[int], foreign: list[bytes]) -> tuple[bytes, str]:
    """An ESP packet (RFC 4303 2) and what kind of hostility it is."""
    op = rng.randrange(6)
    if op == 0 and valid:
        return rng.choice(valid), "replay"
    if op == 1 and valid:
        b = bytearray(rng.choice(valid))
        flip(rng, b, rng.randint(1, 3))
        if rng.random() < 0.5 and spis:
            b[0:4] = rng.choice(spis).to_bytes(4, "big")
        return bytes(b), "bad-icv"
    if op == 2 and valid:
        p = rng.choice(valid)
        return p[: rng.randrange(len(p))], "truncated"
    if op == 3 and spis:  # a real SPI, a fresh sequence number, garbage body
        return (rng.choice(spis).to_bytes(4, "big") + rng.randrange(1, 1 << 32).to_bytes(4, "big")
                + rng.randbytes(rng.choice([0, 1, 15, 16, 31, 48, 64, 100, 1400]))), "bad-icv"
    if op == 4 and foreign:
        b = bytearray(rng.choice(foreign))
        flip(rng, b, rng.randint(0, 2))
        return bytes(b), "foreign-spi"
    return rng.choice([bytes(4), b"\xff" * 4, rng.randbytes(4)]) + rng.randbytes(rng.randint(0, 200)), "random"


def gre_packet(rng: random.Random, nhrp: list[bytes]) -> bytes:
    """A GRE header (RFC 2784, RFC 2890) over IPv4 or NHRP (0x2001) payloads."""
    flags = rng.choice([0x2000, 0x2000, 0x0000, 0x8000, 0xA000, 0x3000, 0xB000, 0x2001, 0x4000, rng.randrange(65536)])
    proto = rng.choice([0x0800, 0x2001, 0x2001, 0x86DD, 0x6558, rng.randrange(65536)])
    opts = b""
    if flags & 0x8000:
        opts += rng.randbytes(4)
    if flags & 0x2000:
        opts += rng.choice([1, 1, 0, 2, rng.randrange(1 << 32)]).to_bytes(4, "big")
    if flags & 0x1000:
        opts += rng.randbytes(4)
    if proto == 0x2001 and nhrp:
        inner = bytearray(rng.choice(nhrp))
        if rng.random() < 0.6:
            flip(rng, inner, rng.randint(1, 6))
        if rng.random() < 0.3:
            del inner[rng.randrange(len(inner) + 1):]
        body = bytes(inner)
    elif proto == 0x0800:
        icmp = b"\x08\x00\x00\x00" + rng.randbytes(rng.randint(4, 64))
        body = ipv4("10.2.2.2", HUB_TUN, 1, icmp)
        body = body[:10] + b"\0\0" + body[12:]
    else:
        body = rng.randbytes(rng.randint(0, 120))
    return struct.pack("!HH", flags, proto) + opts + body


# --------------------------------------------------------------- the campaign
@dataclass
class Report:
    packets_requested: int
    seed: int
    sent: dict[str, int] = field(default_factory=lambda: dict.fromkeys(PROTOCOLS, 0))
    processed: dict[str, int] = field(default_factory=lambda: dict.fromkeys(PROTOCOLS, 0))
    esp_kinds: dict[str, int] = field(default_factory=dict)
    batches: list[dict[str, Any]] = field(default_factory=list)
    outgoing: dict[str, int] = field(default_factory=dict)
    in_clear: list[str] = field(default_factory=list)
    injected: list[str] = field(default_factory=list)
    crashes: list[str] = field(default_factory=list)
    tracebacks: list[str] = field(default_factory=list)
    hub_log_lines: dict[str, int] = field(default_factory=dict)
    engine_errors: list[str] = field(default_factory=list)
    rss_kb_before: int = 0
    rss_kb_after: int = 0
    log_bytes_before: int = 0
    log_bytes_after: int = 0
    ipsec_before: dict[str, int] = field(default_factory=dict)
    ipsec_after: dict[str, int] = field(default_factory=dict)
    stopped_by: str = "count"
    namespaces: list[str] = field(default_factory=list)
    daemon_pids: dict[str, int] = field(default_factory=dict)
    wall_seconds: float = 0.0
    send_seconds: float = 0.0

    @property
    def total_sent(self) -> int:
        return sum(self.sent.values())

    def ok(self) -> bool:
        return (self.stopped_by == "count" and not self.crashes and not self.injected
                and not self.tracebacks and not self.in_clear and not self.engine_errors
                and all(b["ping_ok"] for b in self.batches)
                and self.rss_kb_after - self.rss_kb_before < 10 * 1024
                and self.ipsec_after.get("decaps", 0) - self.ipsec_before.get("decaps", 0) == self.ping_decaps())

    def ping_decaps(self) -> int:
        return sum(b["ping_replies_expected"] for b in self.batches)

    def as_json(self) -> dict[str, object]:
        return {
            "ok": self.ok(), "packets_requested": self.packets_requested, "seed": self.seed,
            "total_sent": self.total_sent, "sent": self.sent, "processed_by_daemon": self.processed,
            "esp_kinds": self.esp_kinds, "stopped_by": self.stopped_by,
            "send_seconds": round(self.send_seconds, 1), "wall_seconds": round(self.wall_seconds, 1),
            "send_rate_pps": round(sum(self.sent[p] for p in PACKET_PROTOCOLS) / self.send_seconds)
            if self.send_seconds else 0,
            "crashes": self.crashes, "tracebacks_in_log": self.tracebacks,
            "engine_errors": self.engine_errors,
            "rss_kb_before": self.rss_kb_before, "rss_kb_after": self.rss_kb_after,
            "rss_growth_kb": self.rss_kb_after - self.rss_kb_before,
            "log_bytes_before": self.log_bytes_before, "log_bytes_after": self.log_bytes_after,
            "hub_log_lines_by_message": self.hub_log_lines,
            "hub_outgoing_frames": self.outgoing, "in_clear": self.in_clear[:20],
            "in_clear_count": len(self.in_clear), "injected_into_tunnel": self.injected,
            "ipsec_counters_before": self.ipsec_before, "ipsec_counters_after": self.ipsec_after,
            "namespaces": self.namespaces, "daemon_pids": self.daemon_pids,
            "pings_ok": sum(b["ping_ok"] for b in self.batches), "batches": self.batches,
        }


SA, DETAIL = "show crypto ipsec sa", "show crypto ipsec sa detail"   # error counters: detail only
IPSEC_FIELDS = {"decaps": (SA, r"#pkts decaps: (\d+)"), "recv_errors": (SA, r"#recv errors (\d+)"),
                "verify_failed": (DETAIL, r"#pkts verify failed: (\d+)"),
                "replay_failed": (DETAIL, r"#pkts replay failed \(rcv\): (\d+)"),
                "invalid_len": (DETAIL, r"#pkts invalid len \(rcv\) (\d+)")}


def query(sock: str, command: str, patience: float = 20.0) -> str:
    """One of our own control commands. While the hostile clients of a control
    batch hold the daemon's connection slots (16 at most), it refuses new
    ones by closing them, as it should; ours retries until the idle ones have
    been dropped (5 s) instead of taking the refusal for a failure."""
    deadline = time.monotonic() + patience
    while True:
        try:
            return send_command(sock, command, timeout=10.0)
        except ControlClientError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.25)


def ipsec_counters(sock: str) -> dict[str, int]:
    """The hub's ESP counters, summed over its SAs."""
    texts = {command: query(sock, command) for command in (SA, DETAIL)}
    return {k: sum(int(m) for m in re.findall(rx, texts[command])) for k, (command, rx) in IPSEC_FIELDS.items()}


def packets_in(sock: str) -> tuple[int, list[str]]:
    """The hub's underlay packets-in count and its engine-error lines."""
    text = query(sock, "show runtime")
    m = re.search(rf"{re.escape('GigabitEthernet0/0/2')}: (\d+) packets in", text)
    return (int(m.group(1)) if m else 0), [line.strip() for line in text.splitlines() if "engine errors" in line]


class Campaign:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rng = random.Random(args.seed)
        self.report = Report(args.packets, args.seed)
        self.tmp = Path(tempfile.mkdtemp(prefix="dmvpn-fuzz-"))
        # the daemons alone (no FRR): OSPF hellos would reach the hub's TUN, which counts only what the fuzz injected
        self.lab = Netlab(parse_scenario(seed_pair_scenario(f"fz{os.getpid()}"), "fuzz.toml"), run_dir=self.tmp,
                          routing=False)
        self.state: NetlabState | None = None
        self.captures: list[Capture] = []
        self.sender: socket.socket | None = None
        self.started = time.monotonic()

    # -------------------------------------------------------------- setup
    def node(self, name: str) -> NodeState:
        assert self.state is not None
        return next(n for n in self.state.nodes if n.name == name)

    def ping(self, count: int = 3) -> tuple[int, int]:
        out = self.last_ping = subprocess.run(["ip", "netns", "exec", self.node("spoke").namespace, "ping", "-n", "-q",
                              "-c", str(count), "-i", "0.2", "-W", "2", HUB_TUN],
                             capture_output=True, text=True, timeout=60)
        m = re.search(r"(\d+) packets transmitted, (\d+) received", out.stdout)
        return (int(m.group(1)), int(m.group(2))) if m else (count, 0)

    def setup(self) -> None:
        self.state = self.lab.up()
        self.report.namespaces = list(self.state.namespaces)
        self.report.daemon_pids = {n.name: n.pid or 0 for n in self.state.nodes}
        hub = self.node("hub")
        learn = Capture(hub.namespace, outgoing_only=False)
        self.captures.append(learn)
        _, got = self.ping(6)           # the first Echo starts IKE
        if got == 0:
            _, got = self.ping(4)
        if got == 0:
            raise RuntimeError("the tunnel does not come up: no ping across it before fuzzing")
        frames = learn.drain()
        learn.close()
        self.captures.remove(learn)
        isakmp = [p for p, _ in frames if p and p[9] == 17 and udp_to((500,))(p)]
        self.live_isakmp = [udp_to((500,))(p) or b"" for p in isakmp]
        self.valid_esp = [p[20:] for p, kind in frames if p and p[9] == 50 and kind == socket.PACKET_HOST]
        self.spis = sorted({int.from_bytes(e[:4], "big") for e in self.valid_esp})
        self.cookies = sorted({m[:16] for m in self.live_isakmp if len(m) >= 16})
        self.out_capture = Capture(hub.namespace, outgoing_only=True)
        self.captures.append(self.out_capture)
        with in_netns(self.node("spoke").namespace):
            self.sender = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        self.sender.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
        time.sleep(0.5)
        self.report.rss_kb_before = rss_kb(hub.pid or 0)
        self.report.log_bytes_before = Path(hub.log).stat().st_size
        self.report.ipsec_before = ipsec_counters(hub.control)

    # -------------------------------------------------------------- pools
    def pools(self) -> dict[str, list[bytes]]:
        rng = self.rng
        isakmp_seeds = self.live_isakmp + pcap_payloads("tcpdump/*isakmp*.pcap*", udp_to((500,))) \
            + pcap_payloads("tcpdump/ISAKMP*.pcap", udp_to((500,))) \
            + pcap_payloads("strongswan/*v1*.pcap*", udp_to((500,))) \
            + pcap_payloads("tcpdump/isakmp4500.pcap", udp_to((4500,)))
        isakmp_seeds = [s for s in isakmp_seeds if s and s[17:18] == b"\x10"] or [bytes(28)]
        v2_seeds = pcap_payloads("tcpdump/ikev2*.pcap", udp_to((500, 4500)))
        foreign_esp = pcap_payloads("tcpdump/*esp*.pcap", proto_is(50))
        nhrp = [g[4:] for g in pcap_payloads("tcpdump/*nhrp*", proto_is(47)) if g[2:4] == b"\x20\x01"]
        if not nhrp:
            raise RuntimeError(f"no NHRP payloads under {PCAPS / 'tcpdump'}")
        pools: dict[str, list[bytes]] = {p: [] for p in PACKET_PROTOCOLS}
        self.esp_kind_of: list[str] = []
        for i in range(POOL):
            src = SPOKE if rng.random() < 0.8 else f"172.17.3.{rng.randrange(3, 250)}"
            sport = rng.choice([500, 500, 4500, rng.randrange(1024, 65536)])
            msg = mutate_isakmp(rng, rng.choice(isakmp_seeds), self.cookies)
            pools["isakmp"].append(ipv4(src, HUB, 17, udp(sport, 500, msg), i))
            v2 = ikev2_message(rng, v2_seeds)
            pools["ikev2"].append(ipv4(src, HUB, 17, udp(500, 500, v2) if i % 2 else udp(4500, 4500, bytes(4) + v2), i))
            esp, kind = esp_packet(rng, self.valid_esp, self.spis, foreign_esp)
            self.esp_kind_of.append(kind)
            pools["esp"].append(ipv4(SPOKE, HUB, 50, esp, i))
            extra = rng.random()
            body = esp if extra < 0.8 else (b"\xff" if extra < 0.85 else bytes(4) + rng.randbytes(rng.randint(0, 80)))
            pools["esp-udp"].append(ipv4(SPOKE, HUB, 17, udp(4500, 4500, body), i))
            pools["gre"].append(ipv4(src, HUB, 47, gre_packet(rng, nhrp), i))
        return pools

    # -------------------------------------------------------------- batches
    def send_batch(self, proto: str, pool: list[bytes], count: int) -> int:
        assert self.sender is not None
        sendto, dest, rate = self.sender.sendto, (HUB, 0), self.args.rate
        started, sent, n = time.monotonic(), 0, len(pool)
        chunk = 256
        while sent < count:
            for i in range(sent, min(count, sent + chunk)):
                try:
                    sendto(pool[i % n], dest)
                except OSError:     # ENOBUFS: the spoke's queue is full; pace harder
                    time.sleep(0.001)
            sent = min(count, sent + chunk)
            ahead = sent / rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
        self.report.send_seconds += time.monotonic() - started
        if proto == "esp":
            for i in range(count):
                k = self.esp_kind_of[i % n]
                self.report.esp_kinds[k] = self.report.esp_kinds.get(k, 0) + 1
        return count

    def control_batch(self, count: int) -> int:
        """``count`` hostile control-socket clients; returns requests made."""
        path, rng, made = self.node("hub").control, self.rng, 0
        held: list[socket.socket] = []
        try:
            for i in range(count):
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.settimeout(5.0)
                try:
                    s.connect(path)
                    kind = i % 6
                    if kind == 0:
                        s.sendall(rng.randbytes(rng.randint(1, 200)) + b"\n")
                    elif kind == 1:
                        s.sendall(b"show " + b"x" * (MAX_COMMAND * 4) + b"\n")
                    elif kind == 2:
                        s.sendall(b"\xff\xfe\x00show\x80\n")
                    elif kind == 3:
                        s.sendall(b"show crypto isa")              # half-written, left open
                        held.append(s)
                        s = None  # type: ignore[assignment]
                    elif kind == 4:
                        s.sendall(b"show crypto ipsec sa peer 999.1.1.1\n")
                    else:
                        s.sendall(b"ping " + rng.choice([b"nan", b"1e400", b"-1", b"10.2.2.2 repeat nan"]) + b"\n")
                    if s is not None:
                        with contextlib.suppress(OSError):
                            s.shutdown(socket.SHUT_WR)
                            while s.recv(65536):
                                pass
                    made += 1
                except OSError:
                    made += 1
                finally:
                    if s is not None:
                        s.close()
                if len(held) >= self.args.control_held:
                    for h in held:
                        h.close()
                    held.clear()
        finally:
            for h in held:
                h.close()
        return made

    def settle(self, sock: str) -> int:
        """Wait until the hub has drained its sockets; its packets-in count."""
        last, stable, end = -1, 0, time.monotonic() + 60
        while time.monotonic() < end:
            now, _ = packets_in(sock)
            stable = stable + 1 if now == last else 0
            if stable >= 2:
                return now
            last = now
            time.sleep(0.3)
        return last

    def check(self, proto: str, round_no: int, before: int, rx_before: int) -> None:
        hub = self.node("hub")
        rep = self.report
        if not alive(hub.pid or 0):
            rep.crashes.append(f"hub pid {hub.pid} died after {proto} batch {round_no}")
            raise RuntimeError(rep.crashes[-1])
        after = self.settle(hub.control)
        rep.processed[proto] += after - before
        injected = tun_rx(hub.namespace) - rx_before
        if injected:
            rep.injected.append(f"{proto} batch {round_no}: {injected} packets reached the hub's TUN")
        tx, rx = self.ping(3)
        for packet, _ in self.out_capture.drain():
            if not packet:
                continue
            kind = classify_outgoing(packet)
            rep.outgoing[kind] = rep.outgoing.get(kind, 0) + 1
            if kind not in ("isakmp", "esp", "esp-udp"):
                rep.in_clear.append(f"after {proto} batch {round_no}: {kind}: {packet[:48].hex()}")
        rep.batches.append({"protocol": proto, "round": round_no, "processed": after - before,
                            "ping": f"{rx}/{tx}", "ping_ok": rx == tx,
                            "ping_replies_expected": rx,
                            **({} if rx == tx else {"ping_output": self.last_ping.stdout.strip().splitlines()[-3:]}),
                            "rss_kb": rss_kb(hub.pid or 0),
                            "elapsed_s": round(time.monotonic() - self.started, 1)})

    def run(self) -> None:
        args, rep = self.args, self.report
        self.setup()
        pools = self.pools()
        hub = self.node("hub")
        packet_protocols = [p for p in args.protocols if p != "control"] or ["isakmp"]
        per_round = max(1, args.packets // (len(packet_protocols) * args.rounds))
        deadline = self.started + args.max_seconds
        for round_no in range(args.rounds):
            for proto in args.protocols:
                if time.monotonic() > deadline:
                    rep.stopped_by = "time"
                    return
                before, _ = packets_in(hub.control)
                rx_before = tun_rx(hub.namespace)
                if proto == "control":
                    rep.sent[proto] += self.control_batch(args.control)
                    rep.processed[proto] += 0
                else:
                    rep.sent[proto] += self.send_batch(proto, pools[proto], per_round)
                self.check(proto, round_no, before, rx_before)
                if proto == "control":  # the packets-in counter does not count requests
                    rep.processed[proto] = rep.sent[proto]

    def finish(self) -> None:
        rep = self.report
        try:
            if self.state is not None:
                hub = self.node("hub")
                if alive(hub.pid or 0):
                    rep.rss_kb_after = rss_kb(hub.pid or 0)
                    with contextlib.suppress(ControlClientError):
                        _, rep.engine_errors = packets_in(hub.control)
                        rep.ipsec_after = ipsec_counters(hub.control)
                for node in self.state.nodes:
                    log = Path(node.log)
                    if log.exists():
                        text = log.read_text(errors="replace")
                        if node.name == "hub":
                            rep.log_bytes_after = len(text.encode())
                            rep.hub_log_lines = log_summary(text)
                        for i, line in enumerate(text.splitlines()):
                            if "Traceback" in line:
                                rep.tracebacks.append(f"{node.name}.log:{i + 1}: {line}")
        finally:
            for cap in self.captures:
                cap.close()
            if self.sender is not None:
                self.sender.close()
            self.lab.down()
            with contextlib.suppress(OSError):
                for p in self.tmp.iterdir():
                    p.unlink() if p.is_file() else None
                self.tmp.rmdir()
            rep.wall_seconds = time.monotonic() - self.started


def log_summary(text: str) -> dict[str, int]:
    """Hub log lines by IOS message name (``%CRYPTO-4-...``) or, for the IKE
    debug lines, by their first words; IKEv2 drops counted apart."""
    counts: dict[str, int] = {}
    for line in text.splitlines():
        m = re.search(r"%[A-Z0-9_]+-\d-[A-Z0-9_]+", line)
        key = m.group(0) if m else "other"
        if "is not IKEv1" in line:
            key += " (IKEv2 or other version)"
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def campaign(args: argparse.Namespace) -> Report:
    """Run one campaign; the namespaces and daemons are gone when it returns."""
    c = Campaign(args)
    try:
        c.run()
    except KeyboardInterrupt:
        c.report.stopped_by = "interrupted"
    except Exception as exc:
        c.report.stopped_by = f"error: {type(exc).__name__}: {exc}"
        traceback.print_exc()
    finally:
        c.finish()
    return c.report


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--packets", type=int, default=1_000_000, help="packets in all (split over the protocols)")
    p.add_argument("--rounds", type=int, default=4, help="batches per protocol")
    p.add_argument("--rate", type=float, default=15000.0, help="packets per second")
    p.add_argument("--control", type=int, default=300, help="control-socket clients per round")
    p.add_argument("--control-held", type=int, default=50, help="half-written clients held open at once")
    p.add_argument("--max-seconds", type=float, default=1800.0, help="stop after this long")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--protocols", type=lambda t: t.split(","), default=list(PROTOCOLS),
                   help=f"comma-separated subset of {','.join(PROTOCOLS)}")
    p.add_argument("--lock-held", action="store_true", help=f"the caller holds {LOCK}")
    args = p.parse_args(argv)
    unknown = set(args.protocols) - set(PROTOCOLS)
    if unknown:
        p.error(f"--protocols: unknown {', '.join(sorted(unknown))} (known: {', '.join(PROTOCOLS)})")
    for name in ("packets", "rounds", "rate", "control", "control_held", "max_seconds"):
        value = getattr(args, name)
        if not 0 < value < float("inf"):
            p.error(f"--{name.replace('_', '-')} must be a positive number, got {value}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        print("fuzz_daemon: needs root (network namespaces, raw sockets)", file=sys.stderr)
        return 2
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)
    with open(LOCK, "a") as lock:
        if not args.lock_held:
            fcntl.flock(lock, fcntl.LOCK_EX)
        report = campaign(args)
    print(json.dumps(report.as_json(), indent=2))
    return 0 if report.ok() else 1


if __name__ == "__main__":
    sys.exit(main())
