"""The report of the built-in DMVPN lab (``dmvpn lab dmvpn``): when each
spoke registered, when and why each shortcut and spoke-to-spoke SA pair
appeared, and what the hub carried, from the routers' NHRP milestones
(:class:`dmvpn.node.nhrp_slot.Milestone`), SA histories and counters.

Times are virtual seconds, rounded to the millisecond so the same seed
prints the same report.
"""

from __future__ import annotations

from typing import Any

from dmvpn.lab.runner import LabResult
from dmvpn.lab.scenario import FaultAction
from dmvpn.node.router import Router
from dmvpn.wire.nhrp import PacketType


def _t(value: float) -> float:
    return round(value, 3)


def _nbma_owner(result: LabResult) -> dict[str, str]:
    """NBMA address -> node name (every router's tunnel source)."""
    return {t.source: name for name, r in result.routers.items() for t in r.tunnels.values()}


def _hubs(result: LabResult) -> list[str]:
    """Nodes whose NHRP serves others (no ``ip nhrp nhs`` of their own)."""
    return [n for n, r in result.routers.items() if r.nhrp and not any(s.engine.nhs for s in r.nhrp.values())]


def registrations(result: LabResult) -> list[dict[str, Any]]:
    """The first successful registration of each spoke to each NHS."""
    out = []
    for name, router in result.routers.items():
        seen: set[str] = set()
        for _iface, at, kind, subject, nbma in router.nhrp_milestones():
            if kind == "registered" and subject not in seen:
                seen.add(subject)
                out.append({"spoke": name, "nhs": subject, "nhs_nbma": nbma, "at_s": _t(at)})
    return sorted(out, key=lambda r: (r["at_s"], r["spoke"]))


def shortcuts(result: LabResult) -> list[dict[str, Any]]:
    """Each NHRP route / next-hop override installed, with what caused it."""
    out = []
    for name, router in result.routers.items():
        last_indication: float | None = None
        for _iface, at, kind, subject, detail in router.nhrp_milestones():
            if kind == "indication-received":
                last_indication = at
            elif kind == "route":
                code, _via, next_hop = detail.split(" ", 2)
                why = (f"Traffic Indication from the hub at {last_indication:.3f} s (a packet of this spoke "
                       "entered and left the hub's tunnel), then Resolution Request and Reply"
                       if last_indication is not None else "Resolution Request and Reply (phase 2)")
                out.append({"node": name, "prefix": subject, "next_hop": next_hop, "code": code,
                            "at_s": _t(at), "why": why})
    return sorted(out, key=lambda r: (r["at_s"], r["node"]))


def spoke_sas(result: LabResult) -> list[dict[str, Any]]:
    """The first SA pair between two spokes, who started it and why."""
    owners, hubs = _nbma_owner(result), set(_hubs(result))
    out: list[dict[str, Any]] = []
    for name, router in result.routers.items():
        if name in hubs:
            continue
        first: dict[str, Any] = {}
        for sa in router.sad.history:
            peer = owners.get(sa.peer)
            if peer is None or peer in hubs or peer in first or not sa.origin.initiator:
                continue
            mapped = _mapping_time(router, sa.peer)
            why = (f"NHRP mapped the peer's tunnel address to {sa.peer} at {mapped:.3f} s; with tunnel "
                   "protection, NHRP to that peer waits for IPsec, so IKE was started" if mapped is not None
                   else "IKE started by data toward the peer")
            first[peer] = {"initiator": name, "responder": peer, "at_s": _t(sa.installed_at or 0.0), "why": why}
        out.extend(first.values())
    return sorted(out, key=lambda r: (r["at_s"], r["initiator"]))


def _mapping_time(router: Router, nbma: str) -> float | None:
    return next((at for _i, at, kind, _s, detail in router.nhrp_milestones()
                 if kind == "mapping" and detail == nbma), None)


def hub_traffic(result: LabResult) -> list[dict[str, Any]]:
    """What each hub forwarded (spoke to spoke through it) and redirected."""
    out = []
    routes = shortcuts(result)
    settled = max((r["at_s"] for r in routes), default=None)
    for name in _hubs(result):
        router = result.routers[name]
        sent = sum(s.engine.traffic.sent[PacketType.TRAFFIC_INDICATION] for s in router.nhrp.values())
        last = router.last_forwarded
        out.append({"hub": name, "forwarded_packets": router.counters.forwarded,
                    "forwarded_bytes": router.forwarded_bytes, "traffic_indications_sent": sent,
                    "last_forwarded_at_s": _t(last) if last is not None else None,
                    "forwarded_after_last_shortcut": last is not None and settled is not None and last > settled})
    return out


def fault_recovery(result: LabResult) -> list[dict[str, Any]]:
    """For each hub restart: when every spoke had registered again (the
    spokes notice by DPD, their SAs to the hub go, IKE and registration
    start over); ``recovered_at_s`` None if one never did."""
    out = []
    hubs = set(_hubs(result))
    spokes = [n for n, r in result.routers.items() if r.nhrp and n not in hubs]
    for fault in result.scenario.faults:
        if fault.action is FaultAction.NODE_READDRESS:
            out.append(_readdress_recovery(result, fault.target, fault.at, str(fault.address)))
            continue
        if fault.action is not FaultAction.NODE_RESTART or fault.target not in hubs:
            continue
        again = [next((at for _i, at, kind, _s, _d in result.routers[n].nhrp_milestones()
                       if kind == "registered" and at >= fault.at), None) for n in spokes]
        done = None if None in again else max(t for t in again if t is not None)
        out.append({"fault": "hub restart", "hub": fault.target, "at_s": _t(fault.at),
                    "recovered_at_s": _t(done) if done is not None else None,
                    "recovery_s": _t(done - fault.at) if done is not None else None})
    return out


def _readdress_recovery(result: LabResult, spoke: str, at: float, address: str) -> dict[str, Any]:
    """A spoke back with a new NBMA address: its unique registration is
    refused (code 14) while the hub still holds the old binding; when that
    expires, the next retry registers (NHRP.md 3.2)."""
    engine = next(s.engine for s in result.routers[spoke].nhrp.values())
    nhs = engine.nhs[0] if engine.nhs else None
    registered = next((t for _i, t, kind, _s, _d in result.routers[spoke].nhrp_milestones() if kind == "registered"),
                      None)
    return {"fault": "NBMA address change", "spoke": spoke, "new_nbma": address, "at_s": _t(at),
            "refusals": nhs.failures if nhs is not None else 0,
            "unique": engine.settings.unique,
            "recovered_at_s": _t(registered) if registered is not None else None,
            "recovery_s": _t(registered - at) if registered is not None else None}


def dmvpn_report(result: LabResult) -> dict[str, Any]:
    """The whole report as one JSON-ready dict."""
    return {
        "faults": fault_recovery(result),
        "registrations": registrations(result),
        "shortcuts": shortcuts(result),
        "spoke_to_spoke_sas": spoke_sas(result),
        "hubs": hub_traffic(result),
        "probes": [{"name": p.spec.name, "src": p.spec.src, "dst": str(p.spec.dst), "sent": p.sent,
                    "received": p.received, "lost": p.lost} for p in result.probes],
    }


def render_text(report: dict[str, Any]) -> list[str]:
    """The report as lines of text."""
    lines = ["NHRP registrations:"]
    lines += [f"  {r['at_s']:9.3f} s  {r['spoke']} registered to {r['nhs']} (NBMA {r['nhs_nbma']})"
              for r in report["registrations"]]
    lines.append("Shortcuts:")
    lines += [f"  {r['at_s']:9.3f} s  {r['node']}: {r['code']} {r['prefix']} via {r['next_hop']}: {r['why']}"
              for r in report["shortcuts"]]
    lines.append("Spoke-to-spoke SA pairs:")
    lines += [f"  {r['at_s']:9.3f} s  {r['initiator']} -> {r['responder']}: {r['why']}"
              for r in report["spoke_to_spoke_sas"]]
    lines.append("Hubs:")
    for h in report["hubs"]:
        after = "some" if h["forwarded_after_last_shortcut"] else "none"
        lines.append(f"  {h['hub']}: forwarded {h['forwarded_packets']} packets ({h['forwarded_bytes']} bytes) "
                     f"spoke to spoke, the last at {h['last_forwarded_at_s']} s; "
                     f"{h['traffic_indications_sent']} Traffic Indications sent; after the last shortcut: {after}")
    for f in report["faults"]:
        if f["fault"] == "NBMA address change":
            unique = "unique registration" if f["unique"] else "no-unique"
            lines.append(f"Fault: {f['spoke']} back at {f['at_s']} s with NBMA {f['new_nbma']} ({unique}): "
                         f"{f['refusals']} registration attempts refused or unanswered, registered at "
                         f"{f['recovered_at_s']} s ({f['recovery_s']} s later)")
            continue
        lines.append(f"Fault: {f['fault']} of {f['hub']} at {f['at_s']} s: every spoke registered again "
                     f"at {f['recovered_at_s']} s ({f['recovery_s']} s later)" if f["recovered_at_s"] is not None
                     else f"Fault: {f['fault']} of {f['hub']} at {f['at_s']} s: not every spoke registered again")
    lines.append("Probes:")
    lines += [f"  {p['name']} ({p['src']} -> {p['dst']}): {p['received']}/{p['sent']} answered, {p['lost']} lost"
              for p in report["probes"]]
    return lines
