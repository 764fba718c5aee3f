"""Plain views of a :class:`RouterConfig` for ``dmvpn config check``: a
text summary with IOS's own words for algorithms, and a JSON-ready dict.
Secrets (pre-shared keys, NHRP authentication) are masked in both."""

from __future__ import annotations

import dataclasses
from enum import Enum
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from typing import Any

from dmvpn.config.acl import PROTOCOLS
from dmvpn.config.algorithms import (
    ISAKMP_AUTH_NAMES,
    ISAKMP_ENCRYPTION_KEYWORDS,
    ISAKMP_HASH_KEYWORDS,
    EncapsulationMode,
)
from dmvpn.config.ikev2_summary import ikev2_summary_lines
from dmvpn.config.model import AccessList, IsakmpKey, NhrpConfig, PortMatch, RouterConfig, TunnelConfig
from dmvpn.config.routing_summary import ospf_interface_line, routing_summary_lines

MASK = "*****"

_AUTH = {v: k for k, v in ISAKMP_AUTH_NAMES.items()}


def to_jsonable(value: Any) -> Any:
    """Dataclasses -> dicts, enums -> names, addresses -> strings; secrets
    masked."""
    if isinstance(value, IsakmpKey):
        return {"key": MASK, "address": str(value.address), "mask": str(value.mask), "line": value.line}
    if isinstance(value, NhrpConfig) and value.authentication is not None:
        value = dataclasses.replace(value, authentication=MASK)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Enum):
        return value.name
    if isinstance(value, (IPv4Address, IPv4Interface, IPv4Network)):
        return str(value)
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    return value


def _tunnel_text(t: TunnelConfig) -> str:
    if t.source_interface:
        src = f"{t.source_interface} ({t.source_address or 'no address'})"
    else:
        src = str(t.source_address) if t.source_address else "none"
    parts = [f"source {src}", f"mode {t.mode.value}"]
    if t.destination:
        parts.append(f"destination {t.destination}")
    parts.append(f"key {t.key}" if t.key is not None else "no key")
    if t.protection_profile:
        shared = " shared" if t.protection_shared else ""
        parts.append(f"protection ipsec profile {t.protection_profile}{shared}")
    else:
        parts.append("no protection")
    return ", ".join(parts)


def _nhrp_text(n: NhrpConfig) -> list[str]:
    flags = [f"network-id {n.network_id}", f"holdtime {n.holdtime} s"]
    for name, on in (("redirect", n.redirect), ("shortcut", n.shortcut), ("multicast dynamic", n.multicast_dynamic)):
        if on:
            flags.append(name)
    if n.authentication is not None:
        flags.append(f"authentication {MASK}")
    if n.registration_timeout is not None:
        flags.append(f"registration timeout {n.registration_timeout} s")
    lines = ["NHRP: " + ", ".join(flags)]
    for s in n.nhs:
        extra = " multicast" if s.multicast else ""
        lines.append(f"NHS {s.address or 'dynamic'} nbma {s.nbma or '?'}{extra}")
    lines += [f"map {m.overlay} -> nbma {m.nbma}" for m in n.maps]
    lines += [f"map multicast {a}" for a in n.multicast_nbma]
    return lines


def _ports_text(m: PortMatch | None) -> str:
    if m is None:
        return ""
    return f" range {m.low} {m.high}" if m.op == "range" else f" {m.op} {m.low}"


def _acl_text(a: AccessList) -> list[str]:
    names = {v: k for k, v in PROTOCOLS.items()}
    out = []
    for e in a.entries:
        proto = names.get(e.protocol, str(e.protocol))
        sp, dp = _ports_text(e.source_ports), _ports_text(e.destination_ports)
        out.append(f"{e.action.value} {proto} {e.source}{sp} {e.destination}{dp}")
    return out


def summary_lines(c: RouterConfig) -> list[str]:
    """The text summary of one config, one item per line, indented by level."""
    out = [f"hostname {c.hostname}"]
    for p in c.isakmp_policies:
        encr = ISAKMP_ENCRYPTION_KEYWORDS.get(p.encryption, p.encryption.name)
        encr += f" {p.key_bits}" if p.key_bits else ""
        dflt = f" (IOS defaults: {', '.join(p.defaulted)})" if p.defaulted else ""
        unusable = " [not usable here]" if not p.usable else ""
        out.append(
            f"  ISAKMP policy {p.priority}: encr {encr}, hash {ISAKMP_HASH_KEYWORDS[p.hash]}, "
            f"authentication {_AUTH.get(p.authentication, p.authentication.name)}, group {int(p.group)}, "
            f"lifetime {p.lifetime} s{dflt}{unusable}"
        )
    for k in c.isakmp_keys:
        where = "any peer (wildcard)" if k.network.prefixlen == 0 else str(k.network)
        out.append(f"  ISAKMP key {MASK} for {where}")
    ka = c.isakmp_keepalive
    out.append(
        f"  ISAKMP keepalive (DPD): {ka.seconds} s, retry {ka.retry} s, {ka.mode.value}"
        if ka else "  ISAKMP keepalive (DPD): off"
    )
    if c.isakmp_nat_keepalive:
        out.append(f"  ISAKMP NAT keepalive: {c.isakmp_nat_keepalive} s")
    out.append(f"  IPsec SA lifetime (global): {c.ipsec_sa_lifetime}")
    out.append(f"  IPsec replay window: {c.replay_window_size or 'disabled'}")
    for t in c.transform_sets.values():
        mode = "transport" if t.mode is EncapsulationMode.TRANSPORT else "tunnel"
        out.append(f"  transform set {t.name}: {{ {t.ios_text} }} mode {mode}")
    for pr in c.ipsec_profiles.values():
        pfs = f"group{int(pr.pfs_group)}" if pr.pfs_group else "no"
        idle = f", idle-time {pr.idle_time} s" if pr.idle_time else ""
        ike2 = f"; ikev2-profile {pr.ikev2_profile}" if pr.ikev2_profile else ""
        out.append(
            f"  IPsec profile {pr.name}: transform sets {', '.join(pr.transform_sets) or 'none'}; "
            f"lifetime {pr.lifetime}; PFS {pfs}{idle}{ike2}"
        )
    if c.ikev2.configured:
        out += ikev2_summary_lines(c.ikev2, MASK)
    for m in c.crypto_maps.values():
        for e in m.entries:
            peers = ", ".join(map(str, e.peers)) or "none"
            pfs = f"group{int(e.pfs_group)}" if e.pfs_group else "no"
            out.append(
                f"  crypto map {m.name} {e.seq}: peer {peers}; transform sets {', '.join(e.transform_sets) or 'none'}; "
                f"match address {e.acl or 'none'}; lifetime {e.lifetime}; PFS {pfs}"
            )
    for a in c.acls.values():
        out.append(f"  access-list {a.name} ({'extended' if a.extended else 'standard'}):")
        out += [f"    {x}" for x in _acl_text(a)]
    for i in c.interfaces.values():
        addr = str(i.address) if i.address else "no address"
        extra = f", ip mtu {i.mtu}" if i.mtu else ""
        extra += ", shutdown" if i.shutdown else ""
        extra += f", crypto map {i.crypto_map}" if i.crypto_map else ""
        out.append(f"  interface {i.name}: {addr}{extra}")
        if i.tunnel:
            out.append(f"    tunnel: {_tunnel_text(i.tunnel)}")
        if i.nhrp:
            out += [f"    {x}" for x in _nhrp_text(i.nhrp)]
        out += ospf_interface_line(c.routing, i.name)
    out += routing_summary_lines(c.routing)
    for r in c.routes:
        via = " ".join(x for x in (r.interface, str(r.next_hop) if r.next_hop else None) if x)
        out.append(f"  route {r.prefix} via {via} [{r.distance}]")
    if not c.routes:
        out.append("  routes: none")
    return out
