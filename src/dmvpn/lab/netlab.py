"""``dmvpn netlab``: a scenario's routers as real daemons in network namespaces.

The same scenario TOML the simulator runs (lab/scenario.py) is built on the
kernel instead:

* one namespace per node, ``dmvpn-<scenario>-<node>``, IPv6 off (the
  underlay and the tunnels are IPv4);
* per ``[[link]]`` with two endpoints a veth pair between the two nodes;
  with more, a bridge in its own namespace ``dmvpn-<scenario>-sw-<link>``
  and a veth from each node to it. Each node-side device gets the address
  its config gives the interface (``GigabitEthernet0/0/2`` becomes
  ``gi0-0-2``; the IOS name is kept as the device's alias) and the link MTU;
* the link's delay, jitter, loss and bandwidth as ``tc netem`` on each node's
  egress (so one way takes ``delay_ms``), when the kernel has sch_netem; when
  it does not, ``up`` says which impairments were not applied;
* every other addressed interface of a node's config that no link uses (a
  ``Loopback0`` LAN) as a veth with that address into a LAN host namespace
  ``dmvpn-<scenario>-<node>-<dev>`` (the host: the subnet's next address,
  default route via the node);
* IPv4 forwarding on and reverse-path filtering off in every node (a router
  between its LAN and the tunnel);
* one ``dmvpn run`` per node in its namespace, control socket, log and
  pidfile under ``/run/dmvpn-netlab/<scenario>/``, started in the
  scenario's order, each answering before the next starts (list the hub
  first: a spoke registers as soon as it is up);
* for a node whose config has ``router ospf`` or ``router bgp``, FRR's zebra
  and ospfd/bgpd in its namespace once its daemon is up
  (:class:`~dmvpn.runtime.real.frr.FrrInstance`, files in
  ``<scenario dir>/<node>.frr``, what ``dmvpn show --node`` reads).

``down`` stops FRR and every daemon by PID (SIGTERM, so DELETEs go out;
SIGKILL after a bounded wait) and deletes every namespace it made (their
veths, bridges and dummies go with them). ``status`` reports what exists,
and each node's NHRP peers and IPsec sessions. ``restart NODE`` kills one
node's daemon (SIGKILL, as a crash: no DELETE goes out) and starts it again.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from dmvpn.config import ConfigError, RouterConfig, load_config
from dmvpn.lab.scenario import LinkSpec, Scenario
from dmvpn.runtime.real.control import ControlClientError, send_command
from dmvpn.runtime.real.frr import FrrError, FrrInstance, daemon_ifnames, netlab_frr_dir, stop_frr_pids

NETLAB_RUN_DIR = Path("/run/dmvpn-netlab")
NS_PREFIX = "dmvpn"
TUN_NAME = "dmvpn-tun0"
READY_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
_SAFE = re.compile(r"[^A-Za-z0-9_.-]")
#: The built-in lab configs (the seed's hub and spoke among them).
LAB_DATA = Path(__file__).resolve().parent / "data"
SEED_WAN = "GigabitEthernet0/0/2"


def seed_pair_scenario(name: str, spoke_iface: str = SEED_WAN) -> str:
    """The scenario TOML of the seed's hub and spoke on one wire with no
    delay, named ``name`` (its namespaces' prefix): what the real-mode
    tests and benches bring up. ``spoke_iface`` picks the spoke's end."""
    return (f'[lab]\nname = "{name}"\n'
            f'[[node]]\nname = "hub"\nconfig = "{LAB_DATA / "hub.cfg"}"\n'
            f'[[node]]\nname = "spoke"\nconfig = "{LAB_DATA / "spoke.cfg"}"\n'
            f'[[link]]\nname = "wan"\nendpoints = ["hub:{SEED_WAN}", "spoke:{spoke_iface}"]\ndelay_ms = 0\n')


class NetlabError(Exception):
    """``netlab`` cannot go on; ``str()`` is the one-line message."""


def linux_ifname(ios_name: str) -> str:
    """A Linux device name for an IOS interface name: the first two letters
    of the type, lower case, then the numbers with ``/`` and ``.`` as ``-``
    (``GigabitEthernet0/0/2`` -> ``gi0-0-2``), at most 15 characters."""
    m = re.fullmatch(r"([A-Za-z]+)[ ]*([0-9/.:]*)", ios_name)
    if m is None:
        return _SAFE.sub("-", ios_name)[:15]
    kind, numbers = m.groups()
    return (kind[:2].lower() + re.sub(r"[/.:]", "-", numbers))[:15]


@dataclass(slots=True)
class NodeState:
    """One node as ``up`` made it."""

    name: str
    namespace: str
    config: str
    hostname: str
    control: str
    log: str
    pid: int | None = None
    interfaces: dict[str, str] = field(default_factory=dict)  # linux name -> "IOS name address"
    #: FRR daemon -> PID, and the instance's directory ("" without FRR)
    frr_pids: dict[str, int] = field(default_factory=dict)
    frr_dir: str = ""
    #: LAN host namespace -> the host's address
    lans: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class NetlabState:
    """What ``up`` made, saved as JSON so ``down`` and ``status`` can find it."""

    scenario: str
    source: str
    namespaces: list[str] = field(default_factory=list)
    nodes: list[NodeState] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> NetlabState:
        data = json.loads(path.read_text())
        data["nodes"] = [NodeState(**n) for n in data["nodes"]]
        return cls(**data)


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=60)


def _ip(*args: str) -> None:
    proc = _run("ip", *args)
    if proc.returncode != 0:
        raise NetlabError(f"ip {' '.join(args)}: {proc.stderr.strip() or 'failed'}")


class Netlab:
    """``up``/``down``/``status`` for one scenario."""

    def __init__(self, scenario: Scenario, run_dir: Path = NETLAB_RUN_DIR, *, routing: bool = True) -> None:
        """``routing``: start FRR for the nodes whose configs route (False:
        the daemons alone, e.g. for a fuzz campaign that counts every packet
        reaching a TUN)."""
        self.scenario = scenario
        self.routing = routing
        self.name = _SAFE.sub("-", scenario.name)
        self.dir = run_dir / self.name
        self.state_path = self.dir / "state.json"

    def namespace(self, node: str) -> str:
        return f"{NS_PREFIX}-{self.name}-{_SAFE.sub('-', node)}"

    # ------------------------------------------------------------------ up
    def up(self) -> NetlabState:
        """Build the namespaces and links, start the daemons; on any failure
        remove what was made and raise :class:`NetlabError`."""
        if self.state_path.exists():
            raise NetlabError(f"netlab {self.name} is already up ({self.state_path}); run 'dmvpn netlab down' first")
        configs = self._load_configs()
        self.dir.mkdir(parents=True, exist_ok=True)
        state = NetlabState(self.name, self.scenario.source)
        try:
            for spec in self.scenario.nodes:
                cfg = configs[spec.name]
                node = NodeState(spec.name, self.namespace(spec.name), str(spec.config.resolve()), cfg.hostname,
                                 str(self.dir / f"{spec.name}.sock"), str(self.dir / f"{spec.name}.log"))
                self._add_namespace(state, node.namespace)
                state.nodes.append(node)
            nodes = {n.name: n for n in state.nodes}
            for link in self.scenario.links:
                self._add_link(state, link, nodes, configs)
            for spec in self.scenario.nodes:
                self._add_loopbacks(state, nodes[spec.name], configs[spec.name])
            state.save(self.state_path)
            for spec in self.scenario.nodes:
                node = nodes[spec.name]
                self._start(state, node, spec.profile or self.scenario.profile)
                state.save(self.state_path)
                self._wait_ready(node)
                self._start_frr(node, configs[spec.name])
                state.save(self.state_path)
        except BaseException:
            state.save(self.state_path)
            self.down()
            raise
        return state

    def _load_configs(self) -> dict[str, RouterConfig]:
        configs = {}
        for spec in self.scenario.nodes:
            try:
                configs[spec.name] = load_config(spec.config)
            except ConfigError as err:
                raise NetlabError(str(err)) from None
        return configs

    def _add_namespace(self, state: NetlabState, ns: str) -> None:
        _ip("netns", "add", ns)
        state.namespaces.append(ns)
        _ip("-n", ns, "link", "set", "lo", "up")
        proc = _run("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1",
                    "net.ipv6.conf.default.disable_ipv6=1")
        if proc.returncode != 0:
            state.notes.append(f"{ns}: could not disable IPv6: {proc.stderr.strip()}")
        proc = _run("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.ip_forward=1",
                    "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0")
        if proc.returncode != 0:
            raise NetlabError(f"{ns}: cannot enable IPv4 forwarding: {proc.stderr.strip()}")

    def _add_loopbacks(self, state: NetlabState, node: NodeState, config: RouterConfig) -> None:
        """Each addressed, non-shutdown interface no link made (a
        ``Loopback0`` LAN) as a veth (``lo0``) into a host namespace of its
        own, ``<node namespace>-<dev>``, whose one host has the subnet's
        first other address and its default route via the node (a dummy
        device would do for the address alone, but not every kernel has the
        dummy driver, and a LAN host lets pings cross the node's forwarding)."""
        for iface in config.interfaces.values():
            dev = linux_ifname(iface.name)
            if iface.tunnel is not None or iface.address is None or iface.shutdown or dev in node.interfaces:
                continue
            host_ns = f"{node.namespace}-{dev}"
            self._add_namespace(state, host_ns)
            _ip("link", "add", dev, "netns", node.namespace, "type", "veth", "peer", "name", "eth0",
                "netns", host_ns)
            _ip("-n", node.namespace, "link", "set", dev, "alias", iface.name)
            _ip("-n", node.namespace, "addr", "add", str(iface.address), "dev", dev)
            _ip("-n", node.namespace, "link", "set", dev, "up")
            node.interfaces[dev] = f"{iface.name} {iface.address}"
            host = lan_host(iface.address)
            if host is None:
                continue
            _ip("-n", host_ns, "addr", "add", str(host), "dev", "eth0")
            _ip("-n", host_ns, "link", "set", "eth0", "up")
            _ip("-n", host_ns, "route", "add", "default", "via", str(iface.address.ip))
            node.lans[host_ns] = str(host.ip)

    def _add_link(self, state: NetlabState, link: LinkSpec, nodes: dict[str, NodeState],
                  configs: dict[str, RouterConfig]) -> None:
        ends = []
        for node_name, ios_iface in link.endpoints:
            iface = configs[node_name].interfaces.get(ios_iface)
            if iface is None or iface.address is None:
                raise NetlabError(f"{self.scenario.source}: link {link.name}: {nodes[node_name].config} has no "
                                  f"interface {ios_iface} with an ip address")
            ends.append((nodes[node_name], ios_iface, linux_ifname(ios_iface), str(iface.address)))
        if len(ends) == 2:
            (a, _, dev_a, _), (b, _, dev_b, _) = ends
            _ip("link", "add", dev_a, "netns", a.namespace, "type", "veth", "peer", "name", dev_b,
                "netns", b.namespace)
        else:
            switch = f"{NS_PREFIX}-{self.name}-sw-{_SAFE.sub('-', link.name)}"
            self._add_namespace(state, switch)
            _ip("-n", switch, "link", "add", "br0", "type", "bridge")
            _ip("-n", switch, "link", "set", "br0", "up")
            for i, (node, _, dev, _) in enumerate(ends):
                port = f"p{i}"
                _ip("link", "add", dev, "netns", node.namespace, "type", "veth", "peer", "name", port,
                    "netns", switch)
                _ip("-n", switch, "link", "set", port, "master", "br0", "mtu", str(link.mtu), "up")
        for node, ios_iface, dev, address in ends:
            _ip("-n", node.namespace, "link", "set", dev, "alias", ios_iface, "mtu", str(link.mtu))
            _ip("-n", node.namespace, "addr", "add", address, "dev", dev)
            _ip("-n", node.namespace, "link", "set", dev, "up")
            node.interfaces[dev] = f"{ios_iface} {address}"
            self._impair(state, link, node, dev)

    def _impair(self, state: NetlabState, link: LinkSpec, node: NodeState, dev: str) -> None:
        """``tc netem`` for the link's impairments on ``dev``'s egress."""
        args: list[str] = []
        if link.delay_ms or link.jitter_ms:
            args += ["delay", f"{link.delay_ms}ms"] + ([f"{link.jitter_ms}ms"] if link.jitter_ms else [])
        if link.loss:
            args += ["loss", f"{link.loss * 100:g}%"]
        if link.duplicate:
            args += ["duplicate", f"{link.duplicate * 100:g}%"]
        if link.reorder and (link.delay_ms or link.jitter_ms):
            args += ["reorder", f"{link.reorder * 100:g}%"]
        if link.bandwidth_mbps:
            args += ["rate", f"{link.bandwidth_mbps:g}mbit"]
        if not args:
            return
        proc = _run("tc", "-n", node.namespace, "qdisc", "add", "dev", dev, "root", "netem", *args)
        if proc.returncode == 0:
            state.notes.append(f"link {link.name}: {node.name} {dev}: netem {' '.join(args)}")
        elif "unknown" in proc.stderr.lower():
            state.notes.append(f"link {link.name}: {node.name} {dev}: NOT applied (kernel lacks sch_netem): "
                               f"{' '.join(args)}")
        else:
            raise NetlabError(f"tc netem on {node.namespace} {dev}: {proc.stderr.strip()}")

    def _start(self, state: NetlabState, node: NodeState, profile: str) -> None:
        argv = ["ip", "netns", "exec", node.namespace, sys.executable, "-m", "dmvpn", "run", node.config,
                "--control", node.control, "--profile", profile, "--tun-name", TUN_NAME]
        with open(node.log, "w") as log:
            proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
        node.pid = proc.pid
        (self.dir / f"{node.name}.pid").write_text(f"{proc.pid}\n")

    def _start_frr(self, node: NodeState, config: RouterConfig) -> None:
        """FRR beside the node's daemon when its config routes (OSPF, BGP)."""
        if not self.routing or (not config.routing.ospf and config.routing.bgp is None):
            return
        run_dir = netlab_frr_dir(self.dir, node.name)
        node.frr_dir = str(run_dir)
        instance = FrrInstance(node.namespace, config, daemon_ifnames(config, TUN_NAME, linux_ifname), run_dir)
        try:
            instance.start()
        except FrrError as err:
            raise NetlabError(f"{node.name}: {err}") from None
        node.frr_pids = instance.pids

    def restart(self, node_name: str) -> str:
        """Kill ``node_name``'s daemon (SIGKILL: a crash, no DELETE sent)
        and start it again; FRR keeps running (it sees the TUN go and come
        back)."""
        if not self.state_path.exists():
            raise NetlabError(f"netlab {self.name} is not up")
        state = NetlabState.load(self.state_path)
        node = next((n for n in state.nodes if n.name == node_name), None)
        if node is None:
            raise NetlabError(f"netlab {self.name} has no node {node_name!r} "
                              f"(nodes: {', '.join(n.name for n in state.nodes)})")
        spec = next(n for n in self.scenario.nodes if n.name == node_name)
        old = node.pid
        if old is not None and _is_our_daemon(old):
            os.kill(old, signal.SIGKILL)
            _wait_gone(old)
        with contextlib.suppress(FileNotFoundError):
            Path(node.control).unlink()
        self._start(state, node, spec.profile or self.scenario.profile)
        state.save(self.state_path)
        self._wait_ready(node)
        return f"{node.name}: killed pid {old}, started pid {node.pid}"

    def _wait_ready(self, node: NodeState) -> None:
        end = time.monotonic() + READY_TIMEOUT
        while True:
            if not _alive(node.pid):
                last = Path(node.log).read_text().strip().splitlines()
                raise NetlabError(f"{node.name}: daemon exited: {last[-1] if last else 'no output'}")
            try:
                send_command(node.control, "show runtime", timeout=2.0)
                return
            except ControlClientError:
                if time.monotonic() > end:
                    raise NetlabError(f"{node.name}: daemon not answering on {node.control} "
                                      f"after {READY_TIMEOUT:g} s") from None
                time.sleep(0.1)

    # ------------------------------------------------------------------ down
    def down(self) -> list[str]:
        """Stop the daemons by PID and delete the namespaces; what was done."""
        done: list[str] = []
        state = NetlabState.load(self.state_path) if self.state_path.exists() else None
        namespaces = list(state.namespaces) if state else []
        for node in state.nodes if state else []:
            if node.frr_pids:
                done += [f"{node.name}: FRR {line}" for line in stop_frr_pids(node.frr_pids, Path(node.frr_dir))]
            if node.pid is not None and _is_our_daemon(node.pid):
                done.append(f"{node.name}: stopped pid {node.pid} ({_stop(node.pid)})")
        prefix = f"{NS_PREFIX}-{self.name}-"
        namespaces += [ns for ns in _namespaces() if ns.startswith(prefix) and ns not in namespaces]
        for ns in namespaces:
            if ns in _namespaces():
                _ip("netns", "del", ns)
                done.append(f"namespace {ns} deleted")
        if self.dir.exists():
            shutil.rmtree(self.dir)
        with contextlib.suppress(OSError):  # the run folder, once no other lab is up in it
            self.dir.parent.rmdir()
        return done

    # ------------------------------------------------------------------ status
    def status(self) -> list[str]:
        """One line per node (namespace, PID, control answer) and the notes."""
        if not self.state_path.exists():
            leftovers = [ns for ns in _namespaces() if ns.startswith(f"{NS_PREFIX}-{self.name}-")]
            return [f"netlab {self.name}: down"] + [f"  leftover namespace {ns}" for ns in leftovers]
        state = NetlabState.load(self.state_path)
        existing = set(_namespaces())
        lines = [f"netlab {self.name} ({state.source})"]
        for node in state.nodes:
            alive = node.pid is not None and _is_our_daemon(node.pid)
            try:
                answer = send_command(node.control, "show runtime", timeout=2.0).splitlines()[0]
            except (ControlClientError, IndexError):
                answer = "control socket not answering"
            ifaces = ", ".join(f"{dev} ({desc})" for dev, desc in node.interfaces.items())
            lines.append(f"  {node.name}: namespace {node.namespace} "
                         f"{'present' if node.namespace in existing else 'MISSING'}, "
                         f"pid {node.pid} {'running' if alive else 'NOT running'}; {ifaces}")
            lines.append(f"    {answer}; control {node.control}; log {node.log}")
            for host_ns, host in node.lans.items():
                lines.append(f"    LAN host {host} in namespace {host_ns}")
            if node.frr_pids:
                lines.append(f"    FRR {', '.join(f'{d} pid {p}' for d, p in node.frr_pids.items())}; {node.frr_dir}")
            lines += [f"    {line}" for line in _peers(node.control)]
        lines += [f"  {note}" for note in state.notes]
        return lines


def lan_host(address: ipaddress.IPv4Interface) -> ipaddress.IPv4Interface | None:
    """The LAN host's address: the subnet's first host address other than
    the router's (None on a /31 or /32)."""
    for host in address.network.hosts():
        if host != address.ip and address.network.prefixlen < 31:
            return ipaddress.IPv4Interface(f"{host}/{address.network.prefixlen}")
    return None


def _peers(control: str) -> list[str]:
    """The node's NHRP peers (``show dmvpn`` peer rows) and IPsec sessions
    (``show crypto session`` peer lines), as its daemon answers."""
    lines = []
    for command, keep in (("show dmvpn", _DMVPN_ROW), ("show crypto session", _SESSION_ROW)):
        try:
            reply = send_command(control, command, timeout=2.0)
        except ControlClientError:
            return []
        rows = [" ".join(line.split()) for line in reply.splitlines() if keep.match(line)]
        lines.append(f"{command}: " + ("; ".join(rows) if rows else "none"))
    return lines


_DMVPN_ROW = re.compile(r"^\s+\d+\s+\d+\.\d+\.\d+\.\d+\s")
_SESSION_ROW = re.compile(r"^(Interface:|Session status:|Peer:)")


def _wait_gone(pid: int) -> None:
    end = time.monotonic() + STOP_TIMEOUT
    while _alive(pid) and time.monotonic() < end:
        time.sleep(0.05)


def _namespaces() -> list[str]:
    proc = _run("ip", "netns", "list")
    return [line.split()[0] for line in proc.stdout.splitlines() if line.strip()]


def _alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of ours is dead for our purposes
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


def _is_our_daemon(pid: int) -> bool:
    """``pid`` runs ``dmvpn run`` (a recycled PID is never signalled)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return _alive(pid) and b"dmvpn" in cmdline and b"run" in cmdline


def _stop(pid: int) -> str:
    os.kill(pid, signal.SIGTERM)
    end = time.monotonic() + STOP_TIMEOUT
    while _alive(pid):
        if time.monotonic() > end:
            os.kill(pid, signal.SIGKILL)
            return "killed after SIGTERM timeout"
        time.sleep(0.05)
    return "SIGTERM"
