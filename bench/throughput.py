"""Throughput through real tunnels in network namespaces, as JSON.

Modes (run as root; each builds its namespaces, measures, removes them):

* ``compare`` (the default): ``dmvpn`` then ``strongswan`` in the same run,
  printed side by side with the ratio dmvpn / strongSwan for each figure
  (the machine's load is the same for both, so the ratio is the figure to
  read; the absolute numbers move with it). ``--rounds N`` alternates the
  two N times and reports each round and the medians.

* ``strongswan``: the reference. ../shared/lab/strongswan_netns_lab.sh brings
  up two strongSwan peers (IKEv1, userspace ESP in UDP 4500 over TUN), then
  iperf3 runs from 10.1.0.1 to 10.2.0.1 through their tunnel.
* ``dmvpn``: ``dmvpn netlab up`` with the seed's hub and spoke configs (delay
  0), iperf3 from the spoke's kernel to the hub's tunnel address 10.2.2.1:
  TUN -> spoke daemon -> GRE over ESP -> hub daemon -> TUN.
* ``dmvpn-ping``: no kernel traffic; the spoke daemon's own pinger sends
  Echos at a fixed interval to the hub's tunnel address through ESP, and the
  reply rate and loss are reported (the daemons' packet path without TUN).
  The pinger schedules each Echo ``interval`` after the previous one was
  sent, so the achieved rate is below the offered one when the loop is busy:
  ``replies_per_s`` is a lower bound of what the path carries.

For iperf3 modes: TCP for ``--seconds`` and UDP offered at ``--udp-rate``
with 1400-byte IP datagrams (1372 bytes of UDP payload: the tunnel MTU of
both setups, so nothing fragments; REFERENCE.md's table used 1348-byte
payloads, ``--udp-length 1348`` repeats that).
Each iperf3 figure comes with packets/s (UDP: the datagrams received;
TCP: the bytes received over a 1,348-byte segment, the MSS of a 1400 MTU
with timestamps) and, for each daemon (the two dmvpn routers, the two
charons), the CPU it used over the run (utime + stime of /proc/PID/stat)
per packet, in microseconds; each round notes the load average.

``--dmvpn-esp udp`` forces ESP in UDP 4500 between the dmvpn daemons (what
strongSwan's kernel-libipsec always does; UDP GSO/GRO apply to it);
``--no-udp-offload`` turns UDP GSO/GRO off, ``--tun-offload gro|tso`` the
TUN offloads on (``DMVPN_UDP_OFFLOAD``, ``DMVPN_TUN_OFFLOAD``);
``--cprofile DIR`` writes each daemon's cProfile statistics there.
``--perf DIR`` samples the whole machine with ``perf record -a`` during
every iperf3 run (both daemons, both iperf3 ends, the kernel, idle) into
``DIR/<side>-<proto>-<n>.data`` and adds to each result ``cpu_share``: the
percent of the two cores' time by process (the daemons by name, the rest
by command) and, under it, by shared object (the interpreter, the crypto
library, the kernel): where the cores went.
Usage: ``python bench/throughput.py [MODE] [--seconds S] [--udp-rate 1G] [--rounds N]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from dmvpn.lab.netlab import seed_pair_scenario

ROOT = Path(__file__).resolve().parent.parent
#: ../shared beside the main checkout, or beside the worktrees' directory
#: (a worktree lives one level deeper: /work/wt/<name>).
SHARED_LAB = next((p for p in (ROOT.parent / "shared" / "lab" / "strongswan_netns_lab.sh",
                               ROOT.parent.parent / "shared" / "lab" / "strongswan_netns_lab.sh") if p.exists()),
                  ROOT.parent / "shared" / "lab" / "strongswan_netns_lab.sh")
DMVPN = [sys.executable, "-m", "dmvpn"]
UDP_LENGTH = 1372  # + 8 UDP + 20 IPv4 = 1400, the tunnel MTU
TCP_SEGMENT = 1348  # 1400 - 20 IPv4 - 20 TCP - 12 timestamp option
CLOCK_TICK = os.sysconf("SC_CLK_TCK")
PERF_HZ = 499  # samples per second per CPU for --perf (prime: no lockstep with timers)


class BenchError(Exception):
    """The bench cannot run; ``str()`` is the one-line reason."""


def _run(argv: list[str], timeout: float = 120, env: dict | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)
    if proc.returncode != 0:
        tail = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-1:] or ["no output"]
        raise BenchError(f"{' '.join(argv[:6])} failed ({proc.returncode}): {tail[0]}")
    return proc


def cpu_seconds(pid: int) -> float:
    """User + system CPU of process ``pid`` (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICK


class SystemProfile:
    """``perf record -a`` of the whole machine while a run lasts (``--perf``)."""

    def __init__(self, directory: Path | None, label: str, daemons: dict[str, int]) -> None:
        self.path = None if directory is None else directory / f"{label}.data"
        self.daemons = daemons
        self._proc: subprocess.Popen | None = None

    def __enter__(self) -> SystemProfile:
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._proc = subprocess.Popen(["perf", "record", "-a", "-F", str(PERF_HZ), "-o", str(self.path)],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                          start_new_session=True)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None:
            self._proc.send_signal(signal.SIGINT)  # perf writes its file and exits
            self._proc.wait(60)

    def shares(self) -> dict | None:
        """Percent of all CPU samples by process, then shared object (>= 0.5%)."""
        if self.path is None:
            return None
        out = _run(["perf", "report", "-i", str(self.path), "--stdio", "--no-children", "--sort", "pid,dso",
                    "-t", ";"]).stdout
        names = {pid: name for name, pid in self.daemons.items()}
        shares: dict[str, dict] = {}
        for line in out.splitlines():
            fields = [f.strip() for f in line.split(";")]
            if line.startswith("#") or len(fields) != 3 or not fields[0].endswith("%"):
                continue
            tid, _, command = fields[1].partition(":")  # perf's "pid" is the thread's id
            who = names.get(_process_of(int(tid)), "idle" if tid == "0" else command)
            entry = shares.setdefault(who, {"percent": 0.0, "by_object": {}})
            percent = float(fields[0].rstrip("%"))
            entry["percent"] += percent
            entry["by_object"][fields[2]] = round(entry["by_object"].get(fields[2], 0.0) + percent, 1)
        for entry in shares.values():
            entry["percent"] = round(entry["percent"], 1)
            entry["by_object"] = {k: v for k, v in sorted(entry["by_object"].items(), key=lambda kv: -kv[1])
                                  if v >= 0.5}
        return dict(sorted(shares.items(), key=lambda kv: -kv[1]["percent"]))


def _process_of(tid: int) -> int:
    """The process (thread group) thread ``tid`` belongs to; ``tid`` itself if it is gone."""
    try:
        status = Path(f"/proc/{tid}/status").read_text()
    except OSError:
        return tid
    return next((int(line.split()[1]) for line in status.splitlines() if line.startswith("Tgid:")), tid)


def iperf3(server_ns: str, server_addr: str, client_ns: str, seconds: float, *, udp_rate: str | None = None,
           udp_length: int = UDP_LENGTH, daemons: dict[str, int] | None = None,
           profile: Path | None = None, label: str = "run") -> dict:
    """One iperf3 run from ``client_ns`` to a one-off server in ``server_ns``;
    the figures that matter from its JSON report, packets/s and each of
    ``daemons`` (name -> pid) CPU microseconds per packet; with ``profile``
    (a directory) the machine's CPU shares during the run (:class:`SystemProfile`)."""
    daemons = daemons or {}
    system = SystemProfile(profile, f"{label}-{'udp' if udp_rate else 'tcp'}", daemons)
    report, cpu = _iperf3(server_ns, server_addr, client_ns, seconds, udp_rate, udp_length, daemons, system)
    if udp_rate:
        packets = report["received_bytes"] / udp_length
        elapsed = report["receiver_seconds"]
    else:
        packets = report.pop("received_bytes") / TCP_SEGMENT
        elapsed = report.pop("receiver_seconds")
    report["packets_per_s"] = round(packets / elapsed) if elapsed else 0
    report["cpu_us_per_packet"] = {name: round(1e6 * used / packets, 2) if packets else None
                                   for name, used in cpu.items()}
    report["cpu_seconds"] = {name: round(used, 2) for name, used in cpu.items()}
    if (shares := system.shares()) is not None:
        report["cpu_share"] = shares
    return report


def _iperf3(server_ns: str, server_addr: str, client_ns: str, seconds: float, udp_rate: str | None,
            udp_length: int, daemons: dict[str, int], system: SystemProfile) -> tuple[dict, dict[str, float]]:
    server = subprocess.Popen(["ip", "netns", "exec", server_ns, "iperf3", "-s", "-1", "-B", server_addr],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        time.sleep(0.5)  # let the server bind; iperf3 has no readiness signal
        argv = ["ip", "netns", "exec", client_ns, "iperf3", "-c", server_addr, "-t", f"{seconds:g}", "-J"]
        if udp_rate:
            argv += ["-u", "-b", udp_rate, "-l", str(udp_length)]
        with system:
            before = {name: cpu_seconds(pid) for name, pid in daemons.items()}
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
            cpu = {name: cpu_seconds(pid) - before[name] for name, pid in daemons.items()}
        report = json.loads(proc.stdout or "{}")
        if "error" in report or proc.returncode != 0:
            raise BenchError(f"iperf3 to {server_addr}: {report.get('error', proc.stderr.strip() or 'failed')}")
        end = report["end"]
        if udp_rate:
            # Goodput = iperf3's receiver rate: bytes over the receiver's own
            # interval, which outlasts the sender's when a tunnel queues a
            # backlog and delivers it late (strongSwan's does, for seconds):
            # that is the rate the tunnel really carried.
            sent, got = end["sum_sent"], end["sum_received"]
            return {"proto": "udp", "offered": udp_rate, "sent_gbit_s": round(sent["bits_per_second"] / 1e9, 3),
                    "received_gbit_s": round(got["bits_per_second"] / 1e9, 3),
                    "received_bytes": got["bytes"], "sender_seconds": round(sent["seconds"], 2),
                    "receiver_seconds": round(got["seconds"], 2),
                    "lost_percent": round(got["lost_percent"], 1)}, cpu
        got = end["sum_received"]
        return {"proto": "tcp", "gbit_s": round(got["bits_per_second"] / 1e9, 3),
                "retransmits": end["sum_sent"].get("retransmits"), "received_bytes": got["bytes"],
                "receiver_seconds": got["seconds"]}, cpu
    finally:
        if server.poll() is None:
            os.kill(server.pid, signal.SIGTERM)
            server.wait(10)


def bench_strongswan(seconds: float, udp_rate: str, udp_length: int = UDP_LENGTH, profile: Path | None = None,
                     label: str = "strongswan") -> dict:
    if not SHARED_LAB.exists():
        raise BenchError(f"{SHARED_LAB} is missing")
    env = dict(os.environ, LAB_DIR=tempfile.mkdtemp(prefix="bench-sw-"))
    _run(["bash", str(SHARED_LAB), "up"], timeout=600, env=env)
    try:
        daemons = {side: int(Path(env["LAB_DIR"], side, "charon.lab.pid").read_text()) for side in ("left", "right")}
        return {"mode": "strongswan", "esp": "aes128-sha256 (ESP in UDP 4500, kernel-libipsec)",
                "results": [iperf3("sw-right", "10.2.0.1", "sw-left", seconds, daemons=daemons,
                                   profile=profile, label=label),
                            iperf3("sw-right", "10.2.0.1", "sw-left", seconds, udp_rate=udp_rate,
                                   udp_length=udp_length, daemons=daemons, profile=profile, label=label)]}
    finally:
        _run(["bash", str(SHARED_LAB), "down"], timeout=120, env=env)


@dataclass(frozen=True)
class DmvpnOptions:
    """How the two dmvpn daemons run (environment of ``dmvpn run``)."""

    esp: str = "raw"  # or "udp": NAT-T forced
    udp_offload: bool = True
    tun_offload: str = "none"
    cprofile: Path | None = None
    perf: Path | None = None  # --perf: both sides' runs are sampled into this directory

    def env(self) -> dict[str, str]:
        env = dict(os.environ, DMVPN_FORCE_NAT_T="1" if self.esp == "udp" else "0",
                   DMVPN_UDP_OFFLOAD="1" if self.udp_offload else "0",
                   DMVPN_TUN_OFFLOAD=self.tun_offload)
        env.pop("DMVPN_CPROFILE", None)
        return env

    def describe(self) -> str:
        esp = "ESP in UDP 4500 (NAT-T forced)" if self.esp == "udp" else "raw ESP"
        return (f"esp-aes esp-sha256-hmac, transport, GRE (seed configs), {esp}, "
                f"UDP GSO/GRO {'on' if self.udp_offload else 'off'}, TUN offload {self.tun_offload}")


def _netlab(work: Path, options: DmvpnOptions = DmvpnOptions()) -> tuple[Path, str]:
    name = f"bench{os.getpid()}"
    scenario = work / "bench.toml"
    scenario.write_text(seed_pair_scenario(name))
    env = options.env()
    if options.cprofile is not None:  # a directory: each daemon writes <hostname>.prof into it
        options.cprofile.mkdir(parents=True, exist_ok=True)
        env["DMVPN_CPROFILE"] = str(options.cprofile)
    _run([*DMVPN, "netlab", "up", str(scenario)], timeout=120, env=env)
    return scenario, name


def _daemon_pids(name: str) -> dict[str, int]:
    return {node: int(Path(f"/run/dmvpn-netlab/{name}/{node}.pid").read_text()) for node in ("spoke", "hub")}


def _control(name: str, node: str, *command: str) -> str:
    return _run([*DMVPN, *command[:1], "--control", f"/run/dmvpn-netlab/{name}/{node}.sock", *command[1:]]).stdout


def bench_dmvpn(seconds: float, udp_rate: str, udp_length: int = UDP_LENGTH,
                options: DmvpnOptions = DmvpnOptions(), label: str = "dmvpn") -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-dmvpn-") as work:
        scenario, name = _netlab(Path(work), options)
        try:
            daemons = _daemon_pids(name)
            warm = subprocess.run(["ip", "netns", "exec", f"dmvpn-{name}-spoke", "ping", "-c", "3", "-W", "2",
                                   "10.2.2.1"], capture_output=True, text=True, timeout=30)
            if " 0 received" in warm.stdout:
                raise BenchError("no kernel ping crossed Tunnel0 (does the router forward TUN packets?)")
            results = [iperf3(f"dmvpn-{name}-hub", "10.2.2.1", f"dmvpn-{name}-spoke", seconds, daemons=daemons,
                              profile=options.perf, label=label),
                       iperf3(f"dmvpn-{name}-hub", "10.2.2.1", f"dmvpn-{name}-spoke", seconds,
                              udp_rate=udp_rate, udp_length=udp_length, daemons=daemons,
                              profile=options.perf, label=label)]
            runtime = {node: _control(name, node, "show", "runtime").strip().splitlines() for node in daemons}
            return {"mode": "dmvpn", "esp": options.describe(), "results": results, "show_runtime": runtime}
        finally:
            _run([*DMVPN, "netlab", "down", str(scenario)])


def bench_dmvpn_ping(count: int, interval: float, size: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-dmvpn-") as work:
        scenario, name = _netlab(Path(work))
        try:
            _control(name, "spoke", "ping", "10.2.2.1", "repeat", "3", "timeout", "1")  # brings IKE up
            time.sleep(3)
            start = time.monotonic()
            _control(name, "spoke", "ping", "10.2.2.1", "repeat", str(count), "size", str(size),
                     "interval", f"{interval:g}", "timeout", "1")
            while True:
                lines = _control(name, "spoke", "show", "ping").splitlines()
                if len(lines) >= 3 and "?" not in lines[2]:
                    break
                if time.monotonic() - start > count * interval + 60:
                    raise BenchError("the ping did not finish")
                time.sleep(0.5)
            elapsed = time.monotonic() - start  # to within the 0.5 s polling step
            received = lines[2].count("!")
            return {"mode": "dmvpn-ping", "echo_size": size, "offered_pps": round(1 / interval),
                    "sent": count, "received": received, "loss_percent": round(100 * (1 - received / count), 2),
                    "elapsed_s": round(elapsed, 1), "replies_per_s": round(received / elapsed),
                    "summary": lines[3]}
        finally:
            _run([*DMVPN, "netlab", "down", str(scenario)])


def _figures(result: dict) -> dict[str, float]:
    """The comparable numbers of one iperf3 mode's result (CPU: the sum of
    the two daemons' microseconds per packet)."""
    tcp, udp = result["results"]
    return {"tcp_gbit_s": tcp["gbit_s"], "tcp_packets_per_s": tcp["packets_per_s"],
            "tcp_cpu_us_per_packet": round(sum(tcp["cpu_us_per_packet"].values()), 2),
            "udp_received_gbit_s": udp["received_gbit_s"], "udp_lost_percent": udp["lost_percent"],
            "udp_packets_per_s": udp["packets_per_s"],
            "udp_cpu_us_per_packet": round(sum(udp["cpu_us_per_packet"].values()), 2)}


def compare(seconds: float, udp_rate: str, rounds: int, udp_length: int = UDP_LENGTH,
            options: DmvpnOptions = DmvpnOptions()) -> dict:
    """dmvpn and strongSwan alternately, ``rounds`` times; medians and ratios."""
    runs = []
    for n in range(1, rounds + 1):
        load = os.getloadavg()[0]
        dmvpn = bench_dmvpn(seconds, udp_rate, udp_length, options, f"dmvpn-{n}")
        strongswan = bench_strongswan(seconds, udp_rate, udp_length, options.perf, f"strongswan-{n}")
        both = (("dmvpn", dmvpn), ("strongswan", strongswan))
        shares = {f"{side}_{r['proto']}": r["cpu_share"] for side, result in both
                  for r in result["results"] if "cpu_share" in r}
        runs.append({"load_1min": round(load, 2), "dmvpn": _figures(dmvpn), "strongswan": _figures(strongswan),
                     **({"cpu_share": shares} if shares else {}),
                     "per_daemon_cpu_us_per_packet": {
                         f"{side}_{r['proto']}": r["cpu_us_per_packet"]
                         for side, result in (("dmvpn", dmvpn), ("strongswan", strongswan))
                         for r in result["results"]},
                     "dmvpn_show_runtime": dmvpn["show_runtime"]})
    sides = ("dmvpn", "strongswan")
    median = {side: {k: statistics.median(r[side][k] for r in runs) for k in runs[0][side]} for side in sides}
    ratio = {k: round(median["dmvpn"][k] / median["strongswan"][k], 2) if median["strongswan"][k] else None
             for k in median["dmvpn"] if k != "udp_lost_percent"}
    return {"mode": "compare", "seconds": seconds, "udp_offered": udp_rate, "udp_payload_bytes": udp_length,
            "udp_ip_datagram_bytes": udp_length + 28, "dmvpn": options.describe(),
            "strongswan": "aes128-sha256 (ESP in UDP 4500, kernel-libipsec)",
            "rounds": runs, "median": median, "ratio_dmvpn_over_strongswan": ratio}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", nargs="?", default="compare", choices=("compare", "strongswan", "dmvpn", "dmvpn-ping"))
    parser.add_argument("--rounds", type=int, default=1, help="compare: alternate the two this many times")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--udp-rate", default="1G")
    parser.add_argument("--udp-length", type=int, default=UDP_LENGTH, help="UDP payload bytes per datagram")
    parser.add_argument("--count", type=int, default=5000, help="dmvpn-ping: Echos to send")
    parser.add_argument("--interval", type=float, default=0.0005, help="dmvpn-ping: seconds between Echos")
    parser.add_argument("--size", type=int, default=1400, help="dmvpn-ping: Echo size in bytes")
    parser.add_argument("--dmvpn-esp", choices=("raw", "udp"), default="raw",
                        help="dmvpn: raw ESP (protocol 50) or ESP in UDP 4500 (NAT-T forced)")
    parser.add_argument("--no-udp-offload", action="store_true", help="dmvpn: UDP GSO/GRO off")
    parser.add_argument("--tun-offload", choices=("none", "gro", "tso"), default="none",
                        help="dmvpn: TUN offloads (gro: joined TCP writes; tso: and segmentation offload)")
    parser.add_argument("--cprofile", type=Path, default=None, metavar="DIR",
                        help="dmvpn: write each daemon's cProfile statistics into DIR")
    parser.add_argument("--perf", type=Path, default=None, metavar="DIR",
                        help="sample the whole machine (perf record -a) during each iperf3 run into DIR")
    args = parser.parse_args()
    options = DmvpnOptions(args.dmvpn_esp, not args.no_udp_offload, args.tun_offload, args.cprofile, args.perf)
    try:
        if os.geteuid() != 0:
            raise BenchError("run as root (namespaces, TUN, raw sockets)")
        if args.mode != "dmvpn-ping" and shutil.which("iperf3") is None:
            raise BenchError("iperf3 is missing (apt-get install iperf3)")
        if args.rounds < 1:
            raise BenchError("--rounds must be at least 1")
        if args.perf is not None and shutil.which("perf") is None:
            raise BenchError("perf is missing (apt-get install linux-perf)")
        if args.mode == "compare":
            result = compare(args.seconds, args.udp_rate, args.rounds, args.udp_length, options)
        elif args.mode == "strongswan":
            result = bench_strongswan(args.seconds, args.udp_rate, args.udp_length, args.perf)
        elif args.mode == "dmvpn":
            result = bench_dmvpn(args.seconds, args.udp_rate, args.udp_length, options)
        else:
            result = bench_dmvpn_ping(args.count, args.interval, args.size)
    except BenchError as err:
        print(f"throughput: {err}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
