"""The router's side of ``show crypto ...``: build the show views from the
SAD, the IKE engine and the configuration, then let :mod:`dmvpn.show` parse
the command and render.

Kept thin: every number comes from the SA, ISAKMP SA or config objects;
the only things worked out here are the IOS conventions that have no home
in those objects (which SAs form a flow, the flow totals, the plaintext
MTU, the sibling flags and flow ids IOS prints).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from dmvpn.config import RouterConfig
from dmvpn.ike.manager import ChildSaView, Ikev2Manager
from dmvpn.ipsec.sa import EspMode, SaDirection, SaState, SecurityAssociation, Selector
from dmvpn.node.policies import child_policies
from dmvpn.node.routing import RouteSource, RoutingTable
from dmvpn.show.commands import run_show
from dmvpn.show.ikev2_views import Ikev2SaView, Ikev2SessionView
from dmvpn.show.views import (
    CryptoSessionView,
    IdentView,
    IpRouteView,
    IpsecFlowCounters,
    IpsecFlowView,
    IpsecInterfaceView,
    IpsecSaView,
    IsakmpSaView,
    RouteView,
    SaHistoryView,
    SessionFlowView,
)
from dmvpn.wire.esp import ESP_HEADER_BYTES
from dmvpn.wire.ipv4 import IPV4_MIN_HEADER
from dmvpn.wire.udp import UDP_HEADER

if TYPE_CHECKING:
    from dmvpn.node.router import Router

#: What the seed's ASR 1000 prints: hardware crypto engine, flow id = conn id - 2000.
FLOW_ENGINE = "HW"
FLOW_ID_OFFSET = 2000
#: ``sibling_flags`` as the seed shows them: transport-mode SA of a tunnel
#: protection crypto map; 0x40 marks tunnel mode; 0x40000000 an SA that has
#: been rekeyed (the seed's previous pair).
SIBLING_BASE = 0xFFFFFFFF80004008
SIBLING_TUNNEL = 0x40
SIBLING_REKEYED = 0x40000000
#: Underlay MTU when the config does not set one.
DEFAULT_MTU = 1500
#: ESP trailer: Pad Length and Next Header (RFC 4303 section 2).
ESP_TRAILER_BYTES = 2


def run_router_show(router: Router, now: float, command: str) -> str:
    """``Router.admin``'s entry point for ``show crypto ...``; errors put the
    caret under the bad word as typed after the ``HOSTNAME#`` prompt."""
    return run_show(command, RouterShowState(router, now), prompt=f"{router.name}#")


def _ident(net: ipaddress.IPv4Network, protocol: int) -> IdentView:
    return IdentView(str(net.network_address), str(net.netmask), protocol, 0)


@dataclass
class RouterShowState:
    """A :class:`dmvpn.show.commands.StateProvider` over one router at ``now``."""

    router: Router
    now: float

    # ------------------------------------------------------------ helpers
    def _children(self) -> dict[int, ChildSaView]:
        """The IKE pair each installed SA belongs to, by ``id(sa)``."""
        out: dict[int, ChildSaView] = {}
        for child in (c for km in self.router.key_managers for c in km.child_sa_views()):
            out[id(child.sa_in)] = child
            out[id(child.sa_out)] = child
        return out

    def _idb(self, interface: str) -> tuple[str, int]:
        """(underlay interface name, its MTU) of a tunnel or crypto-map interface."""
        iface = self.router.config.interfaces.get(interface)
        name = interface
        if iface is not None and iface.tunnel is not None and iface.tunnel.source_interface:
            name = iface.tunnel.source_interface
        under = self.router.config.interfaces.get(name)
        return name, (under.mtu if under is not None and under.mtu else DEFAULT_MTU)

    def _sa_view(self, sa: SecurityAssociation, crypto_map: str) -> IpsecSaView:
        kb, secs = sa.remaining(self.now)
        flags = SIBLING_BASE
        if sa.mode is EspMode.TUNNEL:
            flags |= SIBLING_TUNNEL
        if sa.state is SaState.REKEYED:
            flags |= SIBLING_REKEYED
        return IpsecSaView(
            spi=sa.spi,
            transform=sa.transform.ios_name,
            # IOS: "{Transport UDP-Encaps, }" for ESP in UDP (RFC 3948)
            mode=("Transport" if sa.mode is EspMode.TRANSPORT else "Tunnel") + (" UDP-Encaps" if sa.udp_encap else ""),
            esn=sa.esn,
            conn_id=sa.conn_id,
            flow_engine=FLOW_ENGINE,
            flow_id=sa.conn_id - FLOW_ID_OFFSET,
            sibling_flags=flags,
            crypto_map=crypto_map,
            remaining_kb=kb,
            remaining_sec=int(secs) if secs is not None else 0,
            iv_size=sa.iv_size,
            replay_detection=sa.icv_size > 0,
            replay_window=sa.replay_window_size,
            history=SaHistoryView(
                state=sa.state.value,
                initiator=sa.origin.initiator,
                reason=sa.origin.reason.value,
                replaces_spi=sa.origin.replaces_spi,
                bytes=sa.bytes,
                idle=sa.idle,
            ),
        )

    # ------------------------------------------------------------ StateProvider
    def ipsec_sa_views(self) -> Sequence[IpsecInterfaceView]:
        """SAs grouped as IOS groups them: interface, then (peer, selector)."""
        children = self._children()
        flows: dict[tuple[str, str, str, Selector | None], list[SecurityAssociation]] = {}
        pfs: dict[tuple[str, str, str, Selector | None], int | None] = {}
        for sa in self.router.sad.all():
            child = children.get(id(sa))
            interface = child.interface if child else "(unknown)"
            crypto_map = child.crypto_map if child else "(unknown)"
            key = (interface, crypto_map, sa.peer, sa.selector)
            flows.setdefault(key, []).append(sa)
            pfs.setdefault(key, child.pfs_group if child else None)
        by_iface: dict[str, list[IpsecFlowView]] = {}
        meta: dict[str, tuple[str, str]] = {}
        for key, sas in sorted(flows.items(), key=lambda kv: kv[0][:3]):
            interface = key[0]
            meta.setdefault(interface, (key[1], sas[0].local))
            by_iface.setdefault(interface, []).append(self._flow_view(key, sas, pfs[key]))
        # a protected interface without SAs is listed with its header only
        for policy in child_policies(self.router.config):
            iface = self.router.config.interfaces.get(policy.interface)
            if policy.interface in meta or iface is None or iface.tunnel is None:
                continue
            meta[policy.interface] = (policy.name, str(iface.tunnel.source_address or "0.0.0.0"))
            by_iface[policy.interface] = []
        return [
            IpsecInterfaceView(name, meta[name][0], meta[name][1], tuple(flow_views))
            for name, flow_views in sorted(by_iface.items())
        ]

    def _flow_view(
        self, key: tuple[str, str, str, Selector | None], sas: list[SecurityAssociation], pfs: int | None
    ) -> IpsecFlowView:
        interface, crypto_map, peer, selector = key
        inbound = [sa for sa in sas if sa.direction is SaDirection.INBOUND]
        outbound = [sa for sa in sas if sa.direction is SaDirection.OUTBOUND]
        local = sas[0].local
        # IOS counts per flow, across rekeys: the SAs of this flow that are
        # gone still count (the SAD keeps every SA it installed)
        flow_sas = [sa for sa in self.router.sad.history if sa.peer == peer and sa.selector == selector]
        flow_in = [sa for sa in flow_sas if sa.direction is SaDirection.INBOUND]
        flow_out = [sa for sa in flow_sas if sa.direction is SaDirection.OUTBOUND]
        if selector is None:
            selector = Selector.hosts(local, peer)
        counters = IpsecFlowCounters(
            encaps=sum(sa.pkts_encaps for sa in flow_out),
            encrypt=sum(sa.pkts_encrypt for sa in flow_out),
            digest=sum(sa.pkts_digest for sa in flow_out),
            decaps=sum(sa.pkts_decaps for sa in flow_in),
            decrypt=sum(sa.pkts_decrypt for sa in flow_in),
            verify=sum(sa.pkts_verify for sa in flow_in),
            send_errors=sum(sa.send_errors for sa in flow_out),
            recv_errors=sum(sa.recv_errors for sa in flow_in),
            replay_failed_rcv=sum(sa.replay_drops for sa in flow_in),
            verify_failed=sum(sa.integrity_failures for sa in flow_in),
            invalid_len_rcv=sum(sa.invalid_len_drops for sa in flow_in),
            decaps_failed_rcv=sum(sa.decaps_failures for sa in flow_in),
            invalid_prot_recv=sum(sa.invalid_prot_drops for sa in flow_in),
        )
        current = self.router.sad.outbound_for(peer, selector)
        first = (outbound or inbound)[0]
        overhead = ESP_HEADER_BYTES + first.iv_size + ESP_TRAILER_BYTES + first.icv_size
        if first.mode is EspMode.TUNNEL:
            overhead += IPV4_MIN_HEADER
        if first.udp_encap:
            overhead += UDP_HEADER
        idb, mtu = self._idb(interface)
        return IpsecFlowView(
            local_ident=_ident(selector.local, selector.protocol),
            remote_ident=_ident(selector.remote, selector.protocol),
            peer=peer,
            peer_port=first.udp_encap[1] if first.udp_encap else 500,
            local_endpoint=local,
            remote_endpoint=peer,
            counters=counters,
            plaintext_mtu=mtu - overhead,
            path_mtu=mtu,
            ip_mtu=mtu,
            ip_mtu_idb=idb,
            current_outbound_spi=current.spi if current is not None else 0,
            pfs=pfs is not None,
            dh_group=f"group{pfs}" if pfs is not None else "none",
            inbound_esp=tuple(self._sa_view(sa, crypto_map) for sa in inbound),
            outbound_esp=tuple(self._sa_view(sa, crypto_map) for sa in outbound),
        )

    def isakmp_sa_views(self) -> Sequence[IsakmpSaView]:
        return [v for km in self.router.key_managers for v in km.isakmp_sa_views(self.now)]

    def crypto_session_views(self) -> Sequence[CryptoSessionView]:
        """One session per (interface, peer) that has IKE or IPsec SAs: the
        key manager's view of the peer with the SAD's flows added."""
        children = self._children()
        peers: dict[tuple[str, str], list[SecurityAssociation]] = {}
        for sa in self.router.sad.all():
            child = children.get(id(sa))
            peers.setdefault((child.interface if child else "(unknown)", sa.peer), []).append(sa)
        ike_by_peer = {view.peer: view for km in self.router.key_managers for view in km.session_views(self.now)}
        for view in ike_by_peer.values():
            if not any(p == view.peer for _, p in peers):
                peers.setdefault((view.interface, view.peer), [])
        return [self._session(interface, peer, sas, ike_by_peer.get(peer))
                for (interface, peer), sas in sorted(peers.items())]

    def _session(
        self, interface: str, peer: str, sas: list[SecurityAssociation], ike: CryptoSessionView | None
    ) -> CryptoSessionView:
        base = ike or CryptoSessionView(interface=interface, peer=peer, peer_port=500, phase1_id=peer)
        up = any(s.active for s in base.ike_sas)
        if up and sas:
            status = "UP-ACTIVE"
        elif up:
            status = "UP-IDLE"
        elif sas:
            status = "UP-NO-IKE"
        else:
            status = "DOWN-NEGOTIATING"
        flows: dict[Selector | None, list[SecurityAssociation]] = {}
        for sa in sas:
            flows.setdefault(sa.selector, []).append(sa)
        flow_views = tuple(self._session_flow(sa_list[0].local, peer, sel, sa_list) for sel, sa_list in flows.items())
        return replace(base, interface=interface, status=status, flows=flow_views)

    def _session_flow(
        self, local: str, peer: str, selector: Selector | None, sas: list[SecurityAssociation]
    ) -> SessionFlowView:
        selector = selector or Selector.hosts(local, peer)
        inbound = [sa for sa in sas if sa.direction is SaDirection.INBOUND]
        outbound = [sa for sa in sas if sa.direction is SaDirection.OUTBOUND]
        newest_in = max(inbound, key=lambda sa: sa.conn_id, default=None)
        current_out = self.router.sad.outbound_for(peer, selector)
        in_kb, in_sec = newest_in.remaining(self.now) if newest_in else (0, 0.0)
        out_kb, out_sec = current_out.remaining(self.now) if current_out else (0, 0.0)
        return SessionFlowView(
            protocol=selector.protocol,
            local=_ident(selector.local, 0),
            remote=_ident(selector.remote, 0),
            active_sas=len(sas),
            inbound_pkts=sum(sa.pkts_decaps for sa in inbound),
            inbound_drop=sum(sa.recv_errors for sa in inbound),
            inbound_kb=in_kb,
            inbound_sec=int(in_sec or 0),
            outbound_pkts=sum(sa.pkts_encaps for sa in outbound),
            outbound_drop=sum(sa.send_errors for sa in outbound),
            outbound_kb=out_kb,
            outbound_sec=int(out_sec or 0),
        )

    def ikev2_sa_views(self) -> Sequence[Ikev2SaView]:
        return [v for km in self.router.key_managers if isinstance(km, Ikev2Manager)
                for v in km.ikev2_sa_views(self.now)]

    def ikev2_session_views(self) -> Sequence[Ikev2SessionView]:
        return [v for km in self.router.key_managers if isinstance(km, Ikev2Manager)
                for v in km.ikev2_session_views(self.now)]

    def running_config(self) -> RouterConfig:
        return self.router.config

    def ip_route_view(self) -> IpRouteView:
        """The routing table's installed routes, as ``show ip route`` lists them."""
        return route_view(self.router.routes, self.now)


def route_view(table: RoutingTable, now: float) -> IpRouteView:
    """The view of ``table``'s installed routes at ``now``: static routes
    show the interface only when configured with one; NHRP routes their
    resolved interface and age."""
    views = []
    gateway = None
    for route in table.installed():
        interface, _hop = table.forwarding_for(route)
        override = table.override_for(route.prefix)
        default = route.prefix.prefixlen == 0 and route.source is not RouteSource.CONNECTED
        if default:  # IOS: "to network 0.0.0.0" via the next hop, or 0.0.0.0 for an interface route
            gateway = str(route.next_hop) if route.next_hop is not None else "0.0.0.0"
        shown_interface = interface if route.source is not RouteSource.STATIC or route.interface else None
        views.append(RouteView(
            network=str(route.prefix.network_address),
            prefix_length=route.prefix.prefixlen,
            code=route.source.value,
            source_protocol=_SOURCE_PROTOCOL[route.source],
            distance=route.distance,
            metric=route.metric,
            next_hop=str(route.next_hop) if route.next_hop is not None else None,
            interface=shown_interface if route.next_hop is not None else interface,
            candidate_default=default,
            override=override is not None,
            override_next_hop=str(override.next_hop) if override is not None else None,
            override_interface=override.interface if override is not None else None,
            age_sec=int(now - route.installed_at) if route.installed_at is not None else None,
        ))
    return IpRouteView(tuple(views), gateway)


#: genieparser's ``source_protocol`` names.
_SOURCE_PROTOCOL = {RouteSource.CONNECTED: "connected", RouteSource.LOCAL: "local",
                    RouteSource.STATIC: "static", RouteSource.OSPF: "ospf", RouteSource.BGP: "bgp",
                    RouteSource.NHRP: "nhrp"}
