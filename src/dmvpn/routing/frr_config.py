"""Translate a router's routing model (:mod:`dmvpn.config.routing_model`)
into FRR 8.4 daemon configurations: ``zebra.conf``, ``ospfd.conf`` and
``bgpd.conf``, each read by its daemon with ``-f`` (no integrated config,
so several instances on one host share nothing under /etc/frr).

Interface names are the Linux names the daemon and netlab give the IOS
interfaces (``Tunnel0`` -> the TUN device, ``GigabitEthernet0/0/2`` ->
``gi0-0-2``): the mapping is a parameter. Interfaces it does not name do
not exist on the host and are left out (listed in ``FrrConfig.skipped``).

Where IOS and FRR defaults differ, the IOS value is written out:

* the OSPF network type: IOS makes a Tunnel interface point-to-point and
  other interfaces broadcast; FRR derives it from the Linux flags, and a
  TUN device is ``POINTOPOINT``;
* hello/dead intervals: IOS uses 30/120 s on point-to-multipoint and
  non-broadcast networks and 10/40 s otherwise, and a dead interval of
  four hellos when only the hello is set (RFC 2328 appendix C.3 leaves
  both to the operator); FRR uses 10/40 everywhere;
* eBGP: IOS exchanges routes with an eBGP peer without policy; FRR 8.4
  does not unless ``no bgp ebgp-requires-policy`` (RFC 8212's default).

IOS lets ``network ... area`` and ``ip ospf N area A`` be mixed; FRR
refuses ``ip ospf area`` once a ``network`` line exists, so when a process
has ``network`` lines an interface's ``ip ospf N area A`` becomes a
``network`` line for that interface's subnet.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address

from dmvpn.config.model import RouterConfig
from dmvpn.config.routing_model import (
    DEAD_INTERVAL_FACTOR,
    DEFAULT_HELLO_INTERVAL,
    BgpProcess,
    OspfInterface,
    OspfNetworkType,
    OspfProcess,
)

#: IOS hello interval on point-to-multipoint and non-broadcast networks.
SLOW_HELLO_INTERVAL = 30
_SLOW_TYPES = (OspfNetworkType.POINT_TO_MULTIPOINT, OspfNetworkType.NON_BROADCAST)
#: First line of every daemon config: the defaults IOS's behaviour is
#: closest to (FRR's ``datacenter`` profile shortens timers).
DEFAULTS_LINE = "frr defaults traditional"


class FrrConfigError(Exception):
    """The routing model has something FRR cannot be given; ``str()`` is
    the one-line reason naming the config line."""


@dataclass(frozen=True, slots=True)
class FrrConfig:
    """The daemon configurations of one router: ``ospfd``/``bgpd`` are None
    when the router runs no such protocol."""

    hostname: str
    zebra: str
    ospfd: str | None = None
    bgpd: str | None = None
    skipped: tuple[str, ...] = field(default=())

    @property
    def daemons(self) -> tuple[str, ...]:
        """The daemons to start, zebra first."""
        return ("zebra", *tuple(d for d in ("ospfd", "bgpd") if getattr(self, d) is not None))

    def text(self, daemon: str) -> str:
        value = getattr(self, daemon)
        if not isinstance(value, str):
            raise KeyError(daemon)
        return value


def _header(hostname: str) -> list[str]:
    return [DEFAULTS_LINE, f"hostname {hostname}", "!"]


def network_type(config: RouterConfig, o: OspfInterface) -> OspfNetworkType:
    """The type IOS runs on the interface: the configured one, else
    point-to-point for Tunnel interfaces and broadcast for the others."""
    if o.network_type is not None:
        return o.network_type
    return OspfNetworkType.POINT_TO_POINT if o.interface.startswith("Tunnel") else OspfNetworkType.BROADCAST


def intervals(kind: OspfNetworkType, o: OspfInterface) -> tuple[int, int]:
    """(hello, dead) as IOS computes them for the interface."""
    hello = o.hello_interval or (SLOW_HELLO_INTERVAL if kind in _SLOW_TYPES else DEFAULT_HELLO_INTERVAL)
    return hello, o.dead_interval or DEAD_INTERVAL_FACTOR * hello


def translate(config: RouterConfig, ifnames: Mapping[str, str]) -> FrrConfig:
    """The FRR configuration for ``config``, interfaces renamed by
    ``ifnames`` (IOS name -> Linux name)."""
    routing = config.routing
    skipped = [f"{name}: no Linux interface" for name in sorted(routing.ospf_interfaces) if name not in ifnames]
    zebra = [*_header(config.hostname), "ip forwarding", "!"]
    ospfd = None
    if routing.ospf:
        if len(routing.ospf) > 1:
            second = routing.ospf[1]
            raise FrrConfigError(f"{config.source}:{second.line}: router ospf {second.process_id}: FRR runs one "
                                 f"OSPF process per instance here (already router ospf {routing.ospf[0].process_id})")
        ospfd = "\n".join(_ospfd(config, routing.ospf[0], ifnames)) + "\n"
    bgpd = "\n".join(_bgpd(config, routing.bgp, ifnames)) + "\n" if routing.bgp else None
    return FrrConfig(config.hostname, "\n".join(zebra) + "\n", ospfd, bgpd, tuple(skipped))


def _ospfd(config: RouterConfig, process: OspfProcess, ifnames: Mapping[str, str]) -> list[str]:
    out = _header(config.hostname)
    extra_networks: list[str] = []
    for ios_name, linux in sorted(ifnames.items()):
        o = config.routing.ospf_interfaces.get(ios_name, OspfInterface(ios_name))
        iface = config.interfaces.get(ios_name)
        covered = iface is not None and iface.address is not None and any(
            iface.address.ip in n.prefix for n in process.networks)
        if iface is None or (ios_name not in config.routing.ospf_interfaces and not covered):
            continue
        kind = network_type(config, o)
        hello, dead = intervals(kind, o)
        lines = [f" ip ospf network {kind.value}", f" ip ospf hello-interval {hello}",
                 f" ip ospf dead-interval {dead}"]
        if o.priority is not None:
            lines.append(f" ip ospf priority {o.priority}")
        if o.retransmit_interval is not None:
            lines.append(f" ip ospf retransmit-interval {o.retransmit_interval}")
        if o.cost is not None:
            lines.append(f" ip ospf cost {o.cost}")
        if o.mtu_ignore:
            lines.append(" ip ospf mtu-ignore")
        if process.is_passive(ios_name):
            lines.append(" ip ospf passive")
        if o.process is not None and o.area is not None:
            if process.networks:
                if iface.address is None:
                    raise FrrConfigError(f"{config.source}:{o.line}: ip ospf {o.process} area {o.area}: "
                                         f"{ios_name} has no ip address")
                extra_networks.append(f" network {iface.address.network} area {o.area}")
            else:
                lines.append(f" ip ospf area {o.area}")
        out += [f"interface {linux}", *lines, "!"]
    out.append("router ospf")
    router_id = process.router_id or router_id_guess(config)
    if router_id is not None:
        out.append(f" ospf router-id {router_id}")
    out += [f" network {n.prefix} area {n.area}" for n in process.networks] + extra_networks
    if process.redistribute_connected:
        out.append(" redistribute connected")
    if process.redistribute_static:
        out.append(" redistribute static")
    if process.default_originate:
        out.append(" default-information originate")
    return [*out, "!"]


def _bgpd(config: RouterConfig, bgp: BgpProcess, ifnames: Mapping[str, str]) -> list[str]:
    out = [*_header(config.hostname), f"router bgp {bgp.asn}"]
    router_id = bgp.router_id or router_id_guess(config)
    if router_id is not None:
        out.append(f" bgp router-id {router_id}")
    out.append(" no bgp ebgp-requires-policy")
    af: list[str] = []
    groups = {n.name: n for n in bgp.neighbors if n.is_group}
    for n in sorted(bgp.neighbors, key=lambda n: (not n.is_group, n.name)):
        if n.is_group:
            out.append(f" neighbor {n.name} peer-group")
        if n.remote_as is not None and not (n.peer_group and groups[n.peer_group].remote_as is not None):
            out.append(f" neighbor {n.name} remote-as {n.remote_as}")
        if n.peer_group:
            out.append(f" neighbor {n.name} peer-group {n.peer_group}")
        if n.update_source:
            linux = ifnames.get(n.update_source)
            if linux is None:
                address = config.interface_address(n.update_source)
                if address is None:
                    raise FrrConfigError(f"{config.source}:{n.line}: neighbor {n.name} update-source "
                                         f"{n.update_source}: no Linux interface and no address for it")
                linux = str(address)
            out.append(f" neighbor {n.name} update-source {linux}")
        if n.keepalive is not None:
            out.append(f" neighbor {n.name} timers {n.keepalive} {n.holdtime}")
        if n.description:
            out.append(f" neighbor {n.name} description {n.description}")
        if n.route_reflector_client:
            af.append(f"  neighbor {n.name} route-reflector-client")
        if n.next_hop_self:
            af.append(f"  neighbor {n.name} next-hop-self")
    out += [f" bgp listen range {r.prefix} peer-group {r.peer_group}" for r in bgp.listen_ranges]
    if bgp.listen_limit is not None:
        out.append(f" bgp listen limit {bgp.listen_limit}")
    af += [f"  network {p}" for p in bgp.networks]
    if bgp.redistribute_connected:
        af.append("  redistribute connected")
    if bgp.redistribute_static:
        af.append("  redistribute static")
    out += [" !", " address-family ipv4 unicast", *af, " exit-address-family", "!"]
    return out


def reverse_names(ifnames: Mapping[str, str]) -> dict[str, str]:
    """Linux name -> IOS name, for the show output."""
    return {linux: ios for ios, linux in ifnames.items()}


def router_id_guess(config: RouterConfig) -> IPv4Address | None:
    """The router ID IOS would choose without a ``router-id`` line: the
    highest address of a Loopback, else of any interface (RFC 2328 leaves
    the choice to the implementation). Written out so that FRR does not
    pick one from whatever interfaces exist when it starts (the TUN device
    may come later)."""
    def best(names: list[str]) -> IPv4Address | None:
        addresses = [a.ip for n in names if (a := config.interfaces[n].address) is not None]
        return max(addresses) if addresses else None
    loopbacks = [n for n in config.interfaces if n.startswith("Loopback")]
    return best(loopbacks) or best(list(config.interfaces))
