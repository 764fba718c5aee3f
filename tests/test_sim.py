"""The sim runtime: virtual-time loop, impairments, segments, faults, pcap.

Impairment tests drive a tiny test engine that sends numbered UDP packets at
chosen virtual times and records when each arrives; the expectations are
computed here from the link parameters, not read back from the simulator.
"""

from __future__ import annotations

import heapq
import io
import shutil
import subprocess
from pathlib import Path

import pytest

from dmvpn.node.icmp_echo import IcmpEchoEngine
from dmvpn.runtime.randomness import SeededRandomSource, SystemRandomSource
from dmvpn.runtime.sim import LinkParams, SimulationError, Simulator
from dmvpn.sansio import Engine, LogEvent, Transmit
from dmvpn.wire.ipv4 import IpProto, IPv4Header, decode_ipv4
from dmvpn.wire.udp import decode_udp, encode_udp


class Blaster:
    """Test engine: sends scheduled UDP packets carrying a sequence number,
    records (time, iface, seq, size) of everything it receives."""

    def __init__(self, name: str, address: str) -> None:
        self.name = name
        self.address = address
        self.plan: list[tuple[float, str, str, int, int]] = []  # time, iface, dst, seq, size
        self.received: list[tuple[float, str, int, int]] = []
        self._tx: list[Transmit] = []

    def send_at(self, time: float, dst: str, seq: int, size: int = 100, iface: str = "eth0") -> None:
        heapq.heappush(self.plan, (time, iface, dst, seq, size))

    def receive(self, now: float, iface: str, packet: bytes) -> None:
        header, payload = decode_ipv4(packet)
        udp = decode_udp(payload, header.src, header.dst)
        self.received.append((now, iface, int.from_bytes(udp.payload[:4], "big"), len(packet)))

    def handle_timer(self, now: float) -> None:
        while self.plan and self.plan[0][0] <= now:
            _t, iface, dst, seq, size = heapq.heappop(self.plan)
            body = seq.to_bytes(4, "big").ljust(size - 28, b"\x00")
            self._tx.append(Transmit(iface, IPv4Header(self.address, dst, int(IpProto.UDP)).encode(
                encode_udp(self.address, dst, 9, 9, body))))

    def next_deadline(self) -> float | None:
        return self.plan[0][0] if self.plan else None

    def admin(self, now: float, command: str) -> str:
        return "% Invalid input detected at '^' marker."

    def poll_transmit(self) -> list[Transmit]:
        out, self._tx = self._tx, []
        return out

    def poll_events(self) -> list[LogEvent]:
        return []


def pair(params: LinkParams, seed: int = 7, **kw) -> tuple[Simulator, Blaster, Blaster, object]:
    sim = Simulator(seed=seed)
    a, b = Blaster("a", "10.0.0.1"), Blaster("b", "10.0.0.2")
    sim.add_node(a)
    sim.add_node(b)
    link = sim.connect("a", "eth0", "b", "eth0", params, **kw)
    return sim, a, b, link


def blast(sim: Simulator, a: Blaster, n: int, gap: float, size: int = 100) -> None:
    for i in range(n):
        a.send_at(i * gap, "10.0.0.2", i, size)
    sim.admin("a", "nudge")  # let the sim re-read the new deadline


def test_engines_satisfy_protocol():
    sim = Simulator()
    assert isinstance(Blaster("x", "1.1.1.1"), Engine)
    assert isinstance(IcmpEchoEngine("y", {"eth0": "10.0.0.1/24"}, sim.random_for("y")), Engine)


def test_plain_delay_is_exact():
    sim, a, b, link = pair(LinkParams(delay=0.010))
    blast(sim, a, 5, 1.0)
    sim.run(until=10)
    assert [(round(t, 9), seq) for t, _i, seq, _s in b.received] == [(i + 0.010, i) for i in range(5)]
    assert link.forward.stats.delivered == 5 and link.reverse.stats.sent == 0
    assert sim.now == 10


def test_loss_ratio():
    n = 20000
    sim, a, b, link = pair(LinkParams(loss=0.2))
    blast(sim, a, n, 0.001)
    sim.run(until=n * 0.001 + 1)
    st = link.forward.stats
    assert st.dropped_loss + st.delivered == n == st.sent
    assert len(b.received) == st.delivered
    assert abs(st.dropped_loss / n - 0.2) < 0.015  # sd is 0.0028
    print(f"loss 0.2 -> observed {st.dropped_loss / n:.4f}")


def test_duplication():
    n = 10000
    sim, a, b, link = pair(LinkParams(duplicate=0.1))
    blast(sim, a, n, 0.001)
    sim.run(until=n * 0.001 + 1)
    seqs = [seq for _t, _i, seq, _s in b.received]
    extra = len(seqs) - len(set(seqs))
    assert set(seqs) == set(range(n))
    assert extra == link.forward.stats.duplicated
    assert abs(extra / n - 0.1) < 0.015


def count_inversions(seqs: list[int]) -> int:
    """Packets arriving after one sent later had already arrived."""
    highest, late = -1, 0
    for s in seqs:
        if s < highest:
            late += 1
        highest = max(highest, s)
    return late


def test_reordering():
    n = 5000
    sim, a, b, link = pair(LinkParams(delay=0.01, reorder=0.1, reorder_delay=0.0035))
    blast(sim, a, n, 0.001)
    sim.run(until=n * 0.001 + 1)
    seqs = [seq for _t, _i, seq, _s in b.received]
    assert sorted(seqs) == list(range(n))
    late = count_inversions(seqs)
    assert late == link.forward.stats.reordered
    # A held-back packet is overtaken whenever the next packet is not held too.
    assert 0.07 < late / n < 0.11
    for t, _i, seq, _s in b.received:
        assert round(t - seq * 0.001, 9) in (0.01, 0.0135)
    sim2, a2, _b2, link2 = pair(LinkParams(delay=0.01))
    blast(sim2, a2, 100, 0.001)
    sim2.run(until=2)
    assert link2.forward.stats.reordered == 0


def test_jitter_bounds():
    n = 4000
    sim, a, b, _link = pair(LinkParams(delay=0.020, jitter=0.005))
    blast(sim, a, n, 0.01)
    sim.run(until=n * 0.01 + 1)
    lat = [t - seq * 0.01 for t, _i, seq, _s in b.received]
    assert len(lat) == n
    assert min(lat) >= 0.020 - 1e-9 and max(lat) <= 0.025 + 1e-9
    assert min(lat) < 0.0202 and max(lat) > 0.0248  # the whole range is used
    assert abs(sum(lat) / n - 0.0225) < 0.0002


def test_bandwidth_serialization():
    # 1 Mbit/s: a 1250-byte packet takes 10 ms on the wire; a burst queues.
    sim, a, b, _link = pair(LinkParams(delay=0.005, bandwidth=1e6))
    for i in range(10):
        a.send_at(0.0, "10.0.0.2", i, 1250)
    a.send_at(1.0, "10.0.0.2", 99, 125)
    sim.admin("a", "nudge")
    sim.run(until=2)
    times = [round(t, 9) for t, *_ in b.received]
    assert times == [round(0.005 + 0.010 * (i + 1), 9) for i in range(10)] + [round(1.0 + 0.001 + 0.005, 9)]


def test_mtu_drop_counted_and_logged():
    sim, a, b, link = pair(LinkParams(mtu=1400))
    a.send_at(0.0, "10.0.0.2", 1, 1400)
    a.send_at(0.0, "10.0.0.2", 2, 1401)
    sim.admin("a", "nudge")
    sim.run(until=1)
    assert [seq for _t, _i, seq, _s in b.received] == [1]
    assert link.forward.stats.dropped_mtu == 1
    (event,) = sim.events_for(category="sim")
    assert "1401 bytes exceeds MTU 1400" in event.message and event.fields == {"size": 1401, "mtu": 1400}


def test_per_direction_params():
    sim, a, b, link = pair(LinkParams(delay=0.001), reverse=LinkParams(delay=0.050, loss=1.0))
    a.send_at(0.0, "10.0.0.2", 1)
    b.send_at(0.0, "10.0.0.1", 2)
    sim.admin("a", "nudge")
    sim.admin("b", "nudge")
    sim.run(until=1)
    assert [(round(t, 9), s) for t, _i, s, _z in b.received] == [(0.001, 1)]
    assert a.received == [] and link.reverse.stats.dropped_loss == 1


def test_link_down_up_fault():
    sim, a, b, link = pair(LinkParams(delay=0.1))
    blast(sim, a, 10, 0.2)  # sent at 0.0, 0.2, ... 1.8
    sim.call_at(0.45, lambda: link.set_up(False))  # packet 2 is in flight (sent 0.4, due 0.5)
    sim.call_at(1.1, lambda: link.set_up(True))
    sim.run(until=3)
    assert [s for _t, _i, s, _z in b.received] == [0, 1, 6, 7, 8, 9]
    assert link.forward.stats.dropped_down == 4  # 2 in flight + 3, 4, 5 sent while down


def test_segment_delivers_by_address_and_counts_no_route():
    sim = Simulator(seed=3)
    hub, s1, s2 = Blaster("hub", "192.0.2.1"), Blaster("s1", "192.0.2.11"), Blaster("s2", "192.0.2.12")
    for n in (hub, s1, s2):
        sim.add_node(n)
    seg = sim.segment("inet", LinkParams(delay=0.002))
    seg.attach("hub", "eth0", "192.0.2.1")
    seg.attach("s1", "eth0", "192.0.2.11", downlink=LinkParams(delay=0.010))
    att2 = seg.attach("s2", "eth0", "192.0.2.12")
    with pytest.raises(ValueError, match="already attached"):
        seg.attach("s2", "eth1", "192.0.2.12")
    hub.send_at(0.0, "192.0.2.11", 1)
    hub.send_at(0.0, "192.0.2.12", 2)
    hub.send_at(0.0, "192.0.2.99", 3)
    s1.send_at(0.5, "192.0.2.12", 4)
    sim.call_at(0.9, lambda: att2.set_up(False))
    hub.send_at(1.0, "192.0.2.12", 5)
    for n in ("hub", "s1"):
        sim.admin(n, "nudge")
    sim.run(until=2)
    assert [(round(t, 9), s) for t, _i, s, _z in s1.received] == [(0.012, 1)]
    assert [(round(t, 9), s) for t, _i, s, _z in s2.received] == [(0.004, 2), (0.504, 4)]
    assert seg.no_route == 1
    assert att2.downlink.stats.dropped_down == 1


def test_unconnected_interface_is_counted():
    sim = Simulator()
    a = Blaster("a", "10.0.0.1")
    sim.add_node(a)
    a.send_at(0.0, "10.0.0.2", 1, iface="eth9")
    sim.admin("a", "nudge")
    sim.run(until=1)
    assert sim.nodes["a"].unrouted == 1
    assert "eth9 is not connected" in sim.events_for("a", "sim")[0].message


def test_replace_engine_forgets_old_timer():
    sim, a, b, _link = pair(LinkParams(delay=0.01))
    a.send_at(5.0, "10.0.0.2", 1)
    sim.admin("a", "nudge")
    fresh = Blaster("a", "10.0.0.1")
    fresh.send_at(6.0, "10.0.0.2", 2)
    sim.call_at(1.0, lambda: sim.replace_engine("a", fresh))
    sim.run(until=10)
    assert [s for _t, _i, s, _z in b.received] == [2]
    with pytest.raises(ValueError, match="named"):
        sim.replace_engine("a", Blaster("zz", "1.1.1.1"))


def test_spinning_engine_is_stopped():
    class Spinner(Blaster):
        def next_deadline(self):
            return 0.0

    sim = Simulator()
    sim.add_node(Spinner("s", "10.0.0.9"))
    with pytest.raises(SimulationError, match="'s' asked for its timer"):
        sim.run(until=1)


def test_call_at_order_and_past():
    sim = Simulator()
    seen = []
    sim.call_at(2.0, lambda: seen.append(("b", sim.now)))
    sim.call_at(1.0, lambda: seen.append(("a", sim.now)))
    sim.call_at(2.0, lambda: seen.append(("c", sim.now)))
    sim.run(until=5)
    assert seen == [("a", 1.0), ("b", 2.0), ("c", 2.0)]
    with pytest.raises(ValueError, match="in the past"):
        sim.call_at(4.0, lambda: None)


def test_random_sources():
    one, two = SeededRandomSource(5, "node:a"), SeededRandomSource(5, "node:a")
    assert one.token_bytes(16) == two.token_bytes(16)
    assert SeededRandomSource(5, "node:b").token_bytes(16) != SeededRandomSource(5, "node:a").token_bytes(16)
    assert SeededRandomSource(6, "node:a").token_bytes(16) != SeededRandomSource(5, "node:a").token_bytes(16)
    sim = Simulator(seed=5)
    assert sim.random_for("a").token_bytes(8) == Simulator(seed=5).random_for("a").token_bytes(8)
    system = SystemRandomSource()
    assert len(system.token_bytes(32)) == 32 and system.token_bytes(16) != system.token_bytes(16)
    assert all(2.0 <= system.uniform(2.0, 3.0) <= 3.0 for _ in range(1000))


# -- ICMP echo end to end ------------------------------------------------------

def ping_scenario(seed: int, pcap: io.BytesIO | Path, hours: float = 0.05):
    sim = Simulator(seed=seed)
    for name, addr in (("r1", "10.0.0.1/24"), ("r2", "10.0.0.2/24")):
        sim.add_node(IcmpEchoEngine(name, {"eth0": addr}, sim.random_for(name)))
    link = sim.connect("r1", "eth0", "r2", "eth0",
                       LinkParams(delay=0.005, jitter=0.003, loss=0.05, duplicate=0.02, bandwidth=10e6))
    sim.capture(link, pcap)
    sim.admin("r1", "debug ip icmp")
    sim.admin("r2", "debug ip icmp")
    repeat = int(hours * 3600 / 0.25)
    sim.admin("r1", f"ping 10.0.0.2 repeat {repeat} interval 0.25")
    sim.admin("r2", f"ping 10.0.0.1 repeat {repeat} interval 0.25")
    sim.run(until=hours * 3600 + 5)
    sim.close()
    return sim, link


def event_stream(sim: Simulator) -> list[tuple]:
    return [(e.time, e.node, e.category, e.message, sorted(e.fields.items())) for e in sim.events]


def test_same_seed_same_run_other_seed_differs():
    runs = []
    for seed in (11, 11, 12):
        buf = io.BytesIO()
        sim, _link = ping_scenario(seed, buf)
        runs.append((event_stream(sim), buf.getvalue(), sim.admin("r1", "show ping")))
    assert runs[0] == runs[1]
    assert runs[0][0] != runs[2][0] and runs[0][1] != runs[2][1]
    assert len(runs[0][0]) > 1000 and len(runs[0][1]) > 100_000


def test_ping_admin_output():
    sim = Simulator(seed=1)
    for name, addr in (("r1", "10.0.0.1/24"), ("r2", "10.0.0.2/24")):
        sim.add_node(IcmpEchoEngine(name, {"eth0": addr}, sim.random_for(name)))
    link = sim.connect("r1", "eth0", "r2", "eth0", LinkParams(delay=0.004))
    assert sim.admin("r1", "ping 10.0.0.2") == (
        "Type escape sequence to abort.\n"
        "Sending 5, 100-byte ICMP Echos to 10.0.0.2, timeout is 2 seconds:")
    sim.run(until=1)
    assert sim.admin("r1", "show ping").splitlines()[-2:] == [
        "!!!!!", "Success rate is 100 percent (5/5), round-trip min/avg/max = 8/8/8 ms"]
    link.set_up(False)
    sim.admin("r1", "ping 10.0.0.2 repeat 3 timeout 1")
    sim.run(until=10)
    assert sim.admin("r1", "show ping").splitlines()[-2:] == ["...", "Success rate is 0 percent (0/3)"]
    assert "5 echo, 0 echo reply" in sim.admin("r2", "show ip traffic")
    assert "Sent: 0 echo, 5 echo reply" in sim.admin("r2", "show ip traffic")
    done = [e for e in sim.events_for("r1", "icmp") if e.message.startswith("ping")]
    assert [e.fields["results"] for e in done] == ["!!!!!", "..."]
    for bad in ("ping", "ping 10.0.0.300", "ping 10.0.0.2 repeat", "ping 10.0.0.2 repeat x",
                "ping 10.0.0.2 size 10", "ping 10.0.0.2 colour 3", "frobnicate"):
        assert sim.admin("r1", bad).startswith("%"), bad


def test_pcap_read_by_tshark(tmp_path):
    tshark = shutil.which("tshark")
    assert tshark, "tshark is required for this test (apt-get install tshark)"
    path = tmp_path / "ping.pcap"
    _sim, link = ping_scenario(3, path, hours=0.01)
    fields = subprocess.run(
        [tshark, "-r", str(path), "-T", "fields", "-E", "separator=,",
         "-e", "eth.type", "-e", "ip.src", "-e", "ip.dst", "-e", "icmp.type", "-e", "ip.checksum.status",
         "-e", "icmp.checksum.status", "-o", "ip.check_checksum:TRUE"],
        capture_output=True, text=True, check=True).stdout.splitlines()
    assert len(fields) == link.forward.stats.delivered + link.reverse.stats.delivered
    kinds = {tuple(line.split(",")[:4]) for line in fields}
    assert kinds == {("0x0800", "10.0.0.1", "10.0.0.2", "8"), ("0x0800", "10.0.0.2", "10.0.0.1", "0"),
                     ("0x0800", "10.0.0.2", "10.0.0.1", "8"), ("0x0800", "10.0.0.1", "10.0.0.2", "0")}
    assert all(line.split(",")[4:] == ["1", "1"] for line in fields)  # 1 = Good (tshark -G values)
    report = subprocess.run([tshark, "-r", str(path), "-q", "-z", "expert"],
                            capture_output=True, text=True, check=True).stdout
    assert "Malformed" not in report and "Error" not in report
    timestamps = subprocess.run([tshark, "-r", str(path), "-T", "fields", "-e", "frame.time_epoch"],
                                capture_output=True, text=True, check=True).stdout.split()
    assert float(timestamps[0]) == pytest.approx(0.005, abs=0.0031 + 1e-6)


def test_topology_errors_and_param_validation():
    sim = Simulator()
    sim.add_node(Blaster("a", "10.0.0.1"))
    sim.add_node(Blaster("b", "10.0.0.2"))
    with pytest.raises(ValueError, match="already exists"):
        sim.add_node(Blaster("a", "10.0.0.1"))
    with pytest.raises(KeyError, match="no node named 'zz'"):
        sim.connect("a", "eth0", "zz", "eth0")
    assert sim.nodes["a"].ports == {}  # nothing half-connected
    sim.connect("a", "eth0", "b", "eth0")
    with pytest.raises(ValueError, match="a:eth0 is already connected"):
        sim.connect("a", "eth0", "b", "eth1")
    with pytest.raises(ValueError, match="a:eth0 is already connected"):
        sim.segment("lan").attach("a", "eth0", "10.9.9.9")
    with pytest.raises(ValueError, match="invalid IPv4 address"):
        sim.segments["lan"].attach("a", "eth1", "10.9.9")
    for bad, field in [(dict(loss=1.5), "loss"), (dict(delay=-1), "delay"), (dict(mtu=20), "mtu"),
                       (dict(bandwidth=0), "bandwidth"), (dict(duplicate=-0.1), "duplicate")]:
        with pytest.raises(ValueError, match=f"LinkParams.{field}"):
            LinkParams(**bad)


def test_subscriber_sees_events_as_they_happen():
    sim, a, _b, _link = pair(LinkParams(mtu=100))
    seen = []
    sim.subscribe(lambda e: seen.append((sim.now, e.message)))
    a.send_at(0.5, "10.0.0.2", 1, 200)
    sim.admin("a", "nudge")
    sim.run(until=1)
    assert seen == [(0.5, "packet of 200 bytes exceeds MTU 100, dropped")]


def test_segment_capture_frames(tmp_path):
    tshark = shutil.which("tshark")
    assert tshark, "tshark is required for this test (apt-get install tshark)"
    from dmvpn.runtime.sim.pcap import mac_for
    sim = Simulator(seed=2)
    names = {"hub": "172.16.0.1", "s1": "172.16.0.11", "s2": "172.16.0.12"}
    for name, addr in names.items():
        sim.add_node(IcmpEchoEngine(name, {"wan": addr + "/24"}, sim.random_for(name)))
    seg = sim.segment("inet", LinkParams(delay=0.001))
    for name, addr in names.items():
        seg.attach(name, "wan", addr)
    path = tmp_path / "seg.pcap"
    sim.capture(seg, path)
    sim.admin("hub", "ping 172.16.0.11 repeat 2")
    sim.admin("s2", "ping 172.16.0.1 repeat 2")
    sim.run(until=5)
    sim.close()
    rows = subprocess.run([tshark, "-r", str(path), "-T", "fields", "-E", "separator=,", "-e", "eth.src",
                           "-e", "eth.dst", "-e", "ip.src", "-e", "ip.dst", "-e", "icmp.type"],
                          capture_output=True, text=True, check=True).stdout.splitlines()
    mac = {addr: mac_for(name, "wan").hex(":") for name, addr in names.items()}
    expected = set()
    for src, dst in (("172.16.0.1", "172.16.0.11"), ("172.16.0.12", "172.16.0.1")):
        expected.add(f"{mac[src]},{mac[dst]},{src},{dst},8")
        expected.add(f"{mac[dst]},{mac[src]},{dst},{src},0")
    assert len(rows) == 8 and set(rows) == expected


def test_one_virtual_hour_lossy_ping(capsys):
    """Two nodes ping each other twice a second over a lossy link for one
    virtual hour. Prints the wall time (bench/sim_loop.py is the benchmark;
    no timing assertion here on purpose)."""
    import time
    sim = Simulator(seed=1, keep_events=False)
    for name, addr in (("a", "10.0.0.1/24"), ("b", "10.0.0.2/24")):
        sim.add_node(IcmpEchoEngine(name, {"eth0": addr}, sim.random_for(name)))
    link = sim.connect("a", "eth0", "b", "eth0", LinkParams(delay=0.005, jitter=0.002, loss=0.01))
    sim.admin("a", "ping 10.0.0.2 repeat 7200 interval 0.5")
    sim.admin("b", "ping 10.0.0.1 repeat 7200 interval 0.5")
    start = time.perf_counter()
    sim.run(until=3600 + 5)
    wall = time.perf_counter() - start
    with capsys.disabled():
        print(f"\n1 virtual hour, {sim.events_processed} events: {wall:.3f} s wall")
    sent = link.forward.stats.sent + link.reverse.stats.sent
    lost = link.forward.stats.dropped_loss + link.reverse.stats.dropped_loss
    assert abs(lost / sent - 0.01) < 0.003
    for node in ("a", "b"):
        summary = sim.admin(node, "show ping").splitlines()[-1]
        got = int(summary.split("(")[1].split("/")[0])
        assert 7200 * 0.97 < got < 7200  # both legs may lose: ~2% of pings fail


@pytest.mark.parametrize("words, reply", [
    ("repeat 1e400", "% Invalid repeat value '1e400'"),
    ("size nan", "% Invalid size value 'nan'"),
    ("timeout nan", "% Invalid timeout value 'nan'"),
    ("interval inf", "% Invalid interval value 'inf'"),
])
def test_ping_rejects_non_finite_numbers(words, reply):
    """Issue 17: ``repeat 1e400`` / ``size nan`` were an internal error in the
    daemon (int() of a non-finite float), ``timeout nan`` was accepted."""
    sim = Simulator(seed=1)
    sim.add_node(IcmpEchoEngine("r1", {"eth0": "10.0.0.1/24"}, sim.random_for("r1")))
    assert sim.admin("r1", f"ping 10.0.0.2 {words}") == reply
