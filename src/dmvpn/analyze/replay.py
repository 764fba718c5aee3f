"""``dmvpn analyze --lab``: the user's situation replayed in the lab, from
their two running-configs and the traffic rate their SA table shows, once as
configured and once with the change (:func:`dmvpn.lab.report.apply_fix`).

The lab is called only through its public entry points: a
:class:`~dmvpn.lab.scenario.Scenario` built here like a scenario file would
be, :class:`~dmvpn.lab.runner.LabRun`, and :func:`dmvpn.lab.report.summary`."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

from dmvpn.analyze.diagnosis import focus
from dmvpn.analyze.report import Report, Side
from dmvpn.analyze.units import rate
from dmvpn.config import ConfigError, RouterConfig
from dmvpn.ike.profiles import PROFILES
from dmvpn.lab.report import apply_fix, summary
from dmvpn.lab.runner import LabRun
from dmvpn.lab.scenario import FlowSpec, LinkSpec, NodeSpec, Scenario, ScenarioError, ShowSpec

#: The lab's link between the two routers: the seed lab's (8 ms, 1 ms jitter).
LINK_DELAY_MS, LINK_JITTER_MS = 8.0, 1.0
PROFILE = "cisco-iosxe"
#: The figures compared between the two runs, with their labels.
COMPARED = (("pairs_at_end", "pairs at the end"), ("max_pairs_alive", "most pairs at once"),
            ("max_pairs_outside_rekeys", "most pairs outside rekeys"),
            ("quick_modes", "Quick Modes"), ("volume_rekeys", "volume rekeys"),
            ("time_rekeys", "time rekeys"), ("collisions", "collisions"),
            ("orphan_pairs", "orphan pairs"), ("median_rekey_interval_s", "median rekey interval (s)"))


class ReplayError(ValueError):
    """The lab cannot replay this input; ``str()`` says what is missing."""


@dataclass(slots=True)
class Replay:
    node: str
    peer: str
    rate_out_bps: float
    rate_in_bps: float
    duration: float
    as_configured: dict[str, Any] = field(default_factory=dict)
    with_change: dict[str, Any] = field(default_factory=dict)

    def lines(self) -> list[str]:
        out = [f"The lab ({PROFILE}, {self.duration:.0f} s virtual, {LINK_DELAY_MS:g} ms link, "
               f"{rate(self.rate_out_bps)} {self.node} -> {self.peer} and {rate(self.rate_in_bps)} back, "
               "the measured rates):",
               f"  {'':28}{'as configured':>15}{'with the change':>17}"]
        def cell(value: Any) -> str:
            return "-" if value is None else str(value)

        for key, label in COMPARED:
            out.append(f"  {label:28}{cell(self.as_configured.get(key)):>15}{cell(self.with_change.get(key)):>17}")
        out.append("  (-: no moment was 60 s past a rekey; orphans need a collision, about one rekey in a "
                   "hundred on IOS-XE: a longer run shows more)")
        out.append(f"  (mechanism: {PROFILES[PROFILE].description})")
        return out

    def as_json(self) -> dict[str, Any]:
        return {"node": self.node, "peer": self.peer, "profile": PROFILE, "duration_s": self.duration,
                "rate_out_bps": self.rate_out_bps, "rate_in_bps": self.rate_in_bps,
                "link_delay_ms": LINK_DELAY_MS, "as_configured": self.as_configured,
                "with_change": self.with_change}


def _config(side: Side) -> tuple[RouterConfig, str]:
    if not side.settings.configs:
        raise ReplayError(f"{side.label}: needs a running-config for each router")
    return side.settings.configs[0], side.settings.config_texts[0]


def _underlay(config: RouterConfig, label: str) -> str:
    """The interface the first tunnel is sourced from."""
    for iface in config.tunnels():
        if iface.tunnel is not None and iface.tunnel.source_interface:
            return iface.tunnel.source_interface
    raise ReplayError(f"{label}: no tunnel interface with a 'tunnel source' in its config")


def _overlay(config: RouterConfig, label: str) -> IPv4Address:
    for iface in config.tunnels():
        if iface.address is not None:
            return iface.address.ip
    raise ReplayError(f"{label}: no tunnel interface with an address in its config")


def _mapped(config: RouterConfig, overlay: IPv4Address) -> bool:
    """The router knows ``overlay``'s NBMA address from its config (a static
    map or an NHS)."""
    for iface in config.tunnels():
        nhrp = iface.nhrp
        if nhrp is not None and (any(m.overlay == overlay for m in nhrp.maps)
                                 or any(s.address == overlay and s.nbma for s in nhrp.nhs)):
            return True
    return False


def _with_static_map(text: str, config: RouterConfig, overlay: IPv4Address, nbma: IPv4Address) -> str:
    """``text`` with ``ip nhrp map OVERLAY NBMA`` on its first tunnel: this
    stack has no NHRP registration yet, so a static mapping stands in for
    it, as in the built-in seed lab (``lab/data/hub.cfg``)."""
    tunnel = config.tunnels()[0].name
    out: list[str] = []
    for line in text.splitlines():
        out.append(line)
        if line.strip() == f"interface {tunnel}":
            out.append(f" ip nhrp map {overlay} {nbma}")
    return "\n".join(out) + "\n"


def _config_for_lab(side: Side, peer: Side) -> str:
    config, text = _config(side)
    peer_config, _ = _config(peer)
    overlay = _overlay(peer_config, peer.label)
    if _mapped(config, overlay):
        return text
    nbma = peer_config.interface_address(_underlay(peer_config, peer.label))
    if nbma is None:
        raise ReplayError(f"{peer.label}: its tunnel source interface has no address")
    return _with_static_map(text, config, overlay, nbma)


def _scenario(sides: list[Side], src: Side, dst: Side, out_bps: float, in_bps: float,
              duration: float, peer: str, folder: Path) -> Scenario:
    nodes = []
    for side, other in zip(sides, sides[::-1], strict=True):
        path = folder / f"{side.name}.cfg"
        path.write_text(_config_for_lab(side, other))
        nodes.append(NodeSpec(side.name, path))
    (cs, _), (cd, _) = _config(src), _config(dst)
    link = LinkSpec("wan", ((src.name, _underlay(cs, src.label)), (dst.name, _underlay(cd, dst.label))),
                    delay_ms=LINK_DELAY_MS, jitter_ms=LINK_JITTER_MS)
    flows = [FlowSpec("measured", src.name, _overlay(cd, dst.label), out_bps / 1e6, 1400, start=5.0)]
    if in_bps > 0:
        flows.append(FlowSpec("measured-back", dst.name, _overlay(cs, src.label), in_bps / 1e6, 64, start=6.0))
    return Scenario(source="dmvpn analyze --lab", duration=duration, seed=1, profile=PROFILE,
                    nodes=tuple(nodes), links=(link,), flows=tuple(flows),
                    shows=(ShowSpec(duration, src.name, f"show crypto ipsec sa peer {peer}"),),
                    name="analyze")


def replay_in_lab(report: Report, *, duration: float = 3600.0) -> Replay:
    """Run the lab twice (as configured, with the fix) for the flow the
    analysis is about; raises :class:`ReplayError` when the input lacks
    what the lab needs (two configs, a measured rate)."""
    top = focus(report)
    if top is None:
        raise ReplayError("needs a show crypto ipsec sa with a measured rate")
    src, a = top
    if not a.rate_bps:
        raise ReplayError("the SA table shows no traffic to replay")
    peer = a.flow.peer or a.flow.remote_endpoint
    dst = report.side_of(peer) or next((s for s in report.sides if s is not src), None)
    if dst is None:
        raise ReplayError(f"needs the peer {peer}'s running-config too (--side NAME=FILE)")
    replay = Replay(src.name, peer, a.rate_bps, a.in_rate_bps or 0.0, duration)
    try:
        with tempfile.TemporaryDirectory(prefix="dmvpn-analyze-") as tmp:
            scenario = _scenario([src, dst], src, dst, a.rate_bps, a.in_rate_bps or 0.0, duration, peer, Path(tmp))
            for fix, slot in ((False, replay.as_configured), (True, replay.with_change)):
                result = LabRun(scenario, config_transform=apply_fix if fix else None).run()
                slot.update(summary(result, src.name, peer))
    except (ScenarioError, ConfigError, ValueError) as exc:
        raise ReplayError(str(exc)) from None
    return replay
