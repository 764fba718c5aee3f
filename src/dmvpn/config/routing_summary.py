"""The routing lines of ``dmvpn config check``'s summary: what FRR will be
told for each OSPF interface and process and for BGP."""

from __future__ import annotations

from dmvpn.config.routing_model import BgpProcess, OspfInterface, OspfProcess, RoutingConfig


def _ospf_interface(o: OspfInterface) -> str:
    parts = [f"process {o.process} area {o.area}" if o.process is not None else "no area (network statements)"]
    if o.network_type is not None:
        parts.append(f"network {o.network_type.value}")
    parts += [f"{name} {value}" for name, value in (("priority", o.priority), ("hello", o.hello_interval),
                                                    ("dead", o.dead_interval),
                                                    ("retransmit", o.retransmit_interval), ("cost", o.cost))
              if value is not None]
    if o.mtu_ignore:
        parts.append("mtu-ignore")
    return f"    ospf: {', '.join(parts)}"


def _ospf_process(p: OspfProcess) -> str:
    parts = [f"router-id {p.router_id or 'automatic'}"]
    parts += [f"network {n.prefix} area {n.area}" for n in p.networks]
    if p.passive_default:
        parts.append("passive by default" + (f" except {', '.join(p.not_passive)}" if p.not_passive else ""))
    elif p.passive:
        parts.append(f"passive {', '.join(p.passive)}")
    parts += [f"redistribute {s}" for s, on in (("connected", p.redistribute_connected),
                                                ("static", p.redistribute_static)) if on]
    return f"  router ospf {p.process_id}: {'; '.join(parts)}"


def _bgp(b: BgpProcess) -> list[str]:
    out = [f"  router bgp {b.asn}: router-id {b.router_id or 'automatic'}; "
           f"networks {', '.join(map(str, b.networks)) or 'none'}"
           + ("; redistribute connected" if b.redistribute_connected else "")]
    for n in b.neighbors:
        what = "peer group" if n.is_group else "neighbor"
        extra = f" (peer group {n.peer_group})" if n.peer_group else ""
        extra += f", update-source {n.update_source}" if n.update_source else ""
        extra += ", route-reflector-client" if n.route_reflector_client else ""
        out.append(f"    {what} {n.name}: remote-as {n.remote_as or 'from group'}{extra}")
    out += [f"    listen range {r.prefix} peer-group {r.peer_group}" for r in b.listen_ranges]
    return out


def routing_summary_lines(r: RoutingConfig) -> list[str]:
    """The routing processes (the interface lines come with their interface)."""
    out = [_ospf_process(p) for p in r.ospf]
    return out + (_bgp(r.bgp) if r.bgp else [])


def ospf_interface_line(r: RoutingConfig, interface: str) -> list[str]:
    """The ``ospf:`` line under one interface, if it has ``ip ospf`` lines."""
    o = r.ospf_interfaces.get(interface)
    return [_ospf_interface(o)] if o else []
