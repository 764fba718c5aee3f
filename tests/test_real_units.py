"""The real runtime's pure parts, without namespaces: interface naming, the
daemon spec from a router config, the log printer, the control socket
protocol (server and client in one process)."""

from __future__ import annotations

import io
import re
import socket
import threading
from datetime import datetime
from pathlib import Path

import pytest

from dmvpn.config import load_config, parse_config
from dmvpn.lab.netlab import linux_ifname
from dmvpn.runtime.real.control import MAX_COMMAND, BadRequest, ControlClientError, ControlServer, Pending, send_command
from dmvpn.runtime.real.daemon import DEFAULT_TUNNEL_MTU, router_spec, tun_names
from dmvpn.runtime.real.errors import RuntimeSetupError
from dmvpn.runtime.real.lograte import LogRateLimit
from dmvpn.runtime.real.loop import LogPrinter
from dmvpn.sansio import LogEvent
from dmvpn.show.debug_log import IosClock

SEED = Path(__file__).resolve().parent.parent / "src" / "dmvpn" / "lab" / "data"


@pytest.mark.parametrize("ios, linux", [
    ("GigabitEthernet0/0/2", "gi0-0-2"), ("Tunnel0", "tu0"), ("Ethernet1/0.100", "et1-0-100"),
    ("FastEthernet0", "fa0"), ("TenGigabitEthernet1/0/1/2/3/4/5/6", "te1-0-1-2-3-4-5"),
])
def test_linux_ifname(ios, linux):
    assert linux_ifname(ios) == linux and len(linux) <= 15


def test_router_spec_from_the_seed_hub():
    spec = router_spec(load_config(SEED / "hub.cfg"), control=Path("/x.sock"), tun_name="tun-hub")
    assert [(u.iface, str(u.address), u.udp_ports, u.raw_protocols) for u in spec.underlay] == [
        ("GigabitEthernet0/0/2", "172.17.3.1", (500, 4500), (50, 47))]
    tuns = [(t.iface, t.name, str(t.address), t.mtu) for t in spec.tuns]
    assert tuns == [("Tunnel0", "tun-hub", "10.2.2.1/24", 1400)]
    assert spec.shutdown_command == "clear crypto sa"
    assert tun_names("t", 3) == ["t", "t1", "t2"]


def test_router_spec_errors_are_one_line():
    config = load_config(SEED / "hub.cfg")
    with pytest.raises(RuntimeSetupError, match=r"^invalid interface name 'a/b': 1-15 characters"):
        router_spec(config, control=None, tun_name="a/b")
    with pytest.raises(RuntimeSetupError, match=r"^invalid interface name 'sixteen-chars-xx'"):
        router_spec(config, control=None, tun_name="sixteen-chars-xx")
    bare = parse_config("hostname R\ninterface Tunnel0\n ip address 10.0.0.1 255.255.255.0\n", "r.cfg").config
    with pytest.raises(RuntimeSetupError, match=r"^r.cfg: no physical interface with an ip address"):
        router_spec(bare, control=None, tun_name="t0")


def test_default_tunnel_mtu_and_routes_into_the_tunnel():
    text = ("hostname R\ninterface Gi1\n ip address 192.0.2.1 255.255.255.0\n"
            "interface Tunnel0\n ip address 10.0.0.1 255.255.255.0\n tunnel source Gi1\n"
            "ip route 172.16.0.0 255.240.0.0 Tunnel0\nip route 10.9.0.0 255.255.0.0 10.0.0.2\n"
            "ip route 0.0.0.0 0.0.0.0 192.0.2.254\n")
    spec = router_spec(parse_config(text, "r.cfg").config, control=None, tun_name="t0")
    assert [t.mtu for t in spec.tuns] == [DEFAULT_TUNNEL_MTU]
    assert [(str(p), str(n) if n else None) for p, n in spec.tuns[0].routes] == [
        ("10.9.0.0/16", "10.0.0.2"), ("172.16.0.0/12", None)]  # the default route is the underlay's


def test_log_printer_formats_and_filters():
    out = io.StringIO()
    printer = LogPrinter(out, IosClock(base=datetime(2026, 11, 29, 2, 41, 0)), {"isakmp"})
    printer(LogEvent(7.2, "HUB", "isakmp", "(1001):Old State = IKE_READY", {"facility": "ISAKMP"}))
    printer(LogEvent(8.0, "HUB", "icmp", "ICMP: echo reply sent"))
    printer.categories = None
    printer(LogEvent(9.0, "HUB", "ipsec", "IPsec SA pair installed"))
    printer.note(10.0, "stopped")
    assert out.getvalue().splitlines() == [
        "Nov 29 02:41:07: ISAKMP: (1001):Old State = IKE_READY",
        "Nov 29 02:41:09: IPSEC: IPsec SA pair installed",
        "Nov 29 02:41:10: %DMVPN: stopped",
    ]


def _serve_one(server: ControlServer, answer) -> threading.Thread:
    """Answer one client on a thread, as the runtime's loop would."""
    def serve() -> None:
        server.sock.settimeout(5)
        conn, _ = server.sock.accept()
        conn.settimeout(5)  # bounded: a silent client ends the wait as an empty line
        server.pending[conn.fileno()] = Pending(conn, 0.0)
        while True:
            try:
                command = server.read(conn)
            except BadRequest as bad:
                server.reply(conn, str(bad))
                return
            if command is not None:
                server.reply(conn, answer(command))
                return
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return thread


def test_control_round_trip_and_errors(tmp_path):
    path = tmp_path / "r.sock"
    server = ControlServer(path)
    try:
        thread = _serve_one(server, lambda c: f"you said {c!r}\nsecond line")
        assert send_command(path, "show crypto isakmp sa") == "you said 'show crypto isakmp sa'\nsecond line"
        thread.join(5)
        thread = _serve_one(server, lambda c: "never")
        raw = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        raw.settimeout(5)
        raw.connect(str(path))
        raw.sendall(b"x" * (MAX_COMMAND + 10))
        raw.shutdown(socket.SHUT_WR)
        assert raw.recv(200) == f"% Command longer than {MAX_COMMAND} bytes\n".encode()
        raw.close()
        thread.join(5)
        with pytest.raises(RuntimeSetupError, match="is in use: another daemon is running"):
            ControlServer(path)
    finally:
        server.close()
    assert not path.exists()
    with pytest.raises(ControlClientError, match=r"^no daemon: control socket .* does not exist$"):
        send_command(path, "show x")


def test_control_stale_socket_is_replaced_and_non_socket_refused(tmp_path):
    stale = tmp_path / "stale.sock"
    leftover = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    leftover.bind(str(stale))
    leftover.close()  # the file stays, nobody listens: a crashed daemon's socket
    with pytest.raises(ControlClientError, match="no daemon listening"):
        send_command(stale, "show x")
    ControlServer(stale).close()
    plain = tmp_path / "plain"
    plain.write_text("")
    with pytest.raises(RuntimeSetupError, match=r"exists and is not a socket$"):
        ControlServer(plain)


def test_fragmentation_reassembles_with_scapy():
    from scapy.layers.inet import ICMP, IP, defragment

    from dmvpn.runtime.real.fragmentation import CannotFragment, fragment

    original = bytes(IP(src="10.0.0.1", dst="10.0.0.2", id=4242) / ICMP() / (bytes(range(256)) * 12))
    pieces = fragment(original, 1500)
    assert [len(p) for p in pieces] == [1500, 1500, 140]  # 3080 payload bytes: 1480 + 1480 + 120
    parsed = [IP(p) for p in pieces]
    assert [(p.frag, p.flags.MF, p.id) for p in parsed] == [(0, 1, 4242), (185, 1, 4242), (370, 0, 4242)]
    assert all(IP(bytes(p)).chksum == p.chksum for p in parsed)  # scapy recomputes: our checksums are right
    (whole,) = defragment(parsed)
    assert bytes(whole[ICMP]) == bytes(IP(original)[ICMP])
    small = bytes(IP(dst="10.0.0.2") / b"x")
    assert fragment(small, 1500) == [small]
    with pytest.raises(CannotFragment, match="DF set on a 3092-byte datagram, path MTU 1500"):
        fragment(bytes(IP(dst="10.0.0.2", flags="DF") / (b"x" * 3072)), 1500)


def test_log_printer_survives_a_closed_stream():
    out = io.StringIO()
    printer = LogPrinter(out, IosClock())
    out.close()
    printer.note(1.0, "nobody reads this")  # must not raise
    printer(LogEvent(2.0, "R", "isakmp", "nor this"))
    assert printer.stream is None


def test_log_rate_limit_per_cause_counts_what_it_suppresses():
    """Issue 17: 20,000 bad ISAKMP datagrams wrote 20,000 log lines. Now at
    most 10 lines a second per syslog tag, the rest counted in one
    ``%DMVPN-4-LOG_SUPPRESSED`` line per interval; other tags and debug lines
    are not held back by one noisy cause."""
    out = io.StringIO()
    printer = LogPrinter(out, IosClock(base=datetime(2026, 11, 29, 2, 41, 0)))
    bad = {"facility": "%CRYPTO-4-IKMP_BAD_MESSAGE"}
    for i in range(20_000):                      # 20,000 in 2 s of runtime time
        printer(LogEvent(i / 10_000, "R", "isakmp", f"IKE message {i} dropped", dict(bad)))
        if i == 5_000:
            printer(LogEvent(0.5, "R", "isakmp", "DPD", {"facility": "%CRYPTO-5-IKE_DPD_PEER_DEAD"}))
            printer(LogEvent(0.5, "R", "isakmp", "(1001):debug line"))
    printer.tick(5.0)
    lines = out.getvalue().splitlines()
    kept = [x for x in lines if "IKMP_BAD_MESSAGE: IKE message" in x]
    assert len(kept) == 20
    suppressed = [x for x in lines if "%DMVPN-4-LOG_SUPPRESSED" in x]
    assert len(suppressed) == 2
    counts = [int(re.search(r"LOG_SUPPRESSED: (\d+) %CRYPTO-4-IKMP_BAD_MESSAGE messages suppressed "
                            r"in the last 1 s", x).group(1)) for x in suppressed]
    assert sum(counts) == 20_000 - 20
    assert any("IKE_DPD_PEER_DEAD: DPD" in x for x in lines) and any("(1001):debug line" in x for x in lines)
    assert printer.rate_limit.total_suppressed == {"%CRYPTO-4-IKMP_BAD_MESSAGE": 19_980}
    with pytest.raises(ValueError):
        LogRateLimit(0)
