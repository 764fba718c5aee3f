"""Property tests: for generated views, genieparser reads our IOS text and
every value it extracts (SPIs, counters, remaining lifetimes, transform,
mode, ...) equals the value in our JSON for the same views."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dmvpn.show import ipsec_sa, isakmp_sa, session
from dmvpn.show.iosfmt import spi_text
from dmvpn.show.views import (
    CryptoSessionView,
    IdentView,
    IpsecFlowCounters,
    IpsecFlowView,
    IpsecInterfaceView,
    IpsecSaView,
    IsakmpSaState,
    IsakmpSaView,
    LifetimeStyle,
    SessionFlowView,
    SessionIkeSaView,
)
from test_show_support import genie_parse, normalise

BUDGET = settings(
    max_examples=25, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

u32 = st.integers(0, 2**32 - 1)
ipv4 = st.tuples(*[st.integers(1, 254)] * 4).map(lambda t: ".".join(map(str, t)))
name = st.from_regex(r"[A-Za-z][A-Za-z0-9_-]{0,20}", fullmatch=True)
TRANSFORMS = ["esp-aes esp-sha256-hmac", "esp-256-aes esp-sha-hmac", "esp-gcm 256", "esp-3des esp-md5-hmac"]


def ipsec_sa_view(crypto_map: str) -> st.SearchStrategy[IpsecSaView]:
    return st.builds(
        IpsecSaView,
        spi=st.integers(256, 2**32 - 1),
        transform=st.sampled_from(TRANSFORMS),
        mode=st.sampled_from(["Transport", "Tunnel"]),
        conn_id=st.integers(1, 99999),
        flow_id=st.integers(1, 99999),
        crypto_map=st.just(crypto_map),
        remaining_sec=st.integers(0, 86400),
        remaining_kb=st.one_of(st.none(), st.integers(0, 4_608_000)),
        esn=st.booleans(),
        flow_engine=st.sampled_from(["HW", "SW", "CSR"]),
        sibling_flags=st.integers(0, 2**64 - 1),
        initiator=st.sampled_from([None, True, False]),
        lifetime_style=st.sampled_from(LifetimeStyle),
        iv_size=st.sampled_from([8, 16, None]),
        replay_detection=st.booleans(),
        replay_window=st.sampled_from([None, 64, 1024]),
    )


def sa_list(crypto_map: str) -> st.SearchStrategy[tuple[IpsecSaView, ...]]:
    return st.lists(ipsec_sa_view(crypto_map), max_size=3, unique_by=lambda s: s.spi).map(tuple)


@st.composite
def ipsec_flow(draw: st.DrawFn, crypto_map: str, local: str) -> IpsecFlowView:
    peer = draw(ipv4)
    prot = draw(st.sampled_from([0, 47]))
    counters = IpsecFlowCounters(**{f: draw(u32) for f in IpsecFlowCounters.__dataclass_fields__})
    return IpsecFlowView(
        local_ident=IdentView(local, "255.255.255.255", prot, 0),
        remote_ident=IdentView(peer, "255.255.255.255", prot, 0),
        peer=peer,
        local_endpoint=local,
        remote_endpoint=peer,
        counters=counters,
        plaintext_mtu=draw(st.integers(500, 9000)),
        path_mtu=draw(st.integers(500, 9000)),
        ip_mtu=draw(st.integers(500, 9000)),
        ip_mtu_idb=draw(st.sampled_from(["GigabitEthernet0/0/2", "eth0"])),
        current_outbound_spi=draw(u32),
        protected_vrf=draw(st.one_of(st.none(), name)),
        pfs=draw(st.booleans()),
        dh_group=draw(st.sampled_from(["none", "group14", "group19"])),
        inbound_esp=draw(sa_list(crypto_map)),
        outbound_esp=draw(sa_list(crypto_map)),
        outbound_ah=draw(sa_list(crypto_map)),
    )


@st.composite
def ipsec_interfaces(draw: st.DrawFn) -> list[IpsecInterfaceView]:
    out = []
    for index in range(draw(st.integers(1, 2))):
        tag = draw(name)
        local = draw(ipv4)
        flows = tuple(draw(st.lists(ipsec_flow(tag, local), min_size=1, max_size=2)))
        out.append(IpsecInterfaceView(f"Tunnel{index}", tag, local, flows))
    return out


def contained(genie: Any, ours: Any, path: str = "") -> list[str]:
    if isinstance(genie, dict):
        missing = []
        for key, value in genie.items():
            if not isinstance(ours, dict) or key not in ours:
                missing.append(f"{path}/{key}")
            else:
                missing += contained(value, ours[key], f"{path}/{key}")
        return missing
    return [] if genie == ours else [path]


@BUDGET
@given(ipsec_interfaces(), st.booleans())
def test_ipsec_sa_genie_equals_json(views: list[IpsecInterfaceView], detail: bool) -> None:
    text = ipsec_sa.render_text(views, detail)
    genie = genie_parse("iosxe", "show crypto ipsec sa detail" if detail else "show crypto ipsec sa", text)
    ours = normalise(ipsec_sa.render_json(views))
    for view in views:
        for index, flow in enumerate(view.flows, start=1):
            g = genie["interface"][view.name]["ident"][str(index)]
            o = ours["interface"][view.name]["ident"][str(index)]
            # genie files "#pkts invalid len (rcv)" under pkts_verify_failed
            if detail:
                assert g.pop("pkts_verify_failed") == o["pkts_invalid_len_rcv"]
            for key in ("inbound_esp_sas", "outbound_esp_sas", "outbound_ah_sas"):
                sas = {spi_text(sa.spi): sa for sa in getattr(flow, key.removesuffix("_sas"))}
                assert set(g[key].get("spi", {})) == set(sas)
                for spi, sa in sas.items():
                    gsa = g[key]["spi"][spi]
                    assert {"transform", "in_use_settings", "remaining_key_lifetime", "status"} <= set(gsa)
                    if sa.remaining_kb is None and sa.lifetime_style is LifetimeStyle.HOURS_MINS:
                        # genie keeps only the last word of "H hours, M mins"
                        assert gsa.pop("remaining_key_lifetime") == "mins"
            assert contained(g, o) == []
            assert g["pkts_encaps"] == flow.counters.encaps and g["pkts_decrypt"] == flow.counters.decrypt


@st.composite
def isakmp_views(draw: st.DrawFn) -> list[IsakmpSaView]:
    out = []
    for _ in range(draw(st.integers(1, 4))):
        local, remote = draw(ipv4), draw(ipv4)
        initiator = draw(st.booleans())
        out.append(
            IsakmpSaView(
                dst=remote if initiator else local,
                src=local if initiator else remote,
                local=local,
                remote=remote,
                state=draw(st.sampled_from(IsakmpSaState)),
                conn_id=draw(st.integers(1, 99999)),
                deleted=draw(st.booleans()),
                ivrf=draw(st.one_of(st.none(), name)),
                encryption=draw(st.sampled_from(["aes", "3des"])),
                hash=draw(st.sampled_from(["sha", "sha256", "md5"])),
                dh_group=draw(st.sampled_from([2, 14, 15, 19])),
                lifetime_sec=draw(st.integers(0, 86400)),
                capabilities=draw(st.sampled_from(["D", "DN", "N"])),
                engine_conn_id=draw(st.one_of(st.none(), st.integers(1, 99999))),
            )
        )
    return out


@BUDGET
@given(isakmp_views(), st.booleans())
def test_isakmp_sa_genie_equals_json(sas: list[IsakmpSaView], detail: bool) -> None:
    text = isakmp_sa.render_text(sas, detail)
    command = "show crypto isakmp sa detail" if detail else "show crypto isakmp sa"
    genie = genie_parse("iosxe", command, text)
    ours = normalise(isakmp_sa.render_json(sas, detail))
    assert contained(genie, ours) == []
    rows = genie["isakmp_stats"]["IPv4"]
    assert len(rows) == len(sas)
    if detail:
        assert [r["lifetime"] for r in rows.values()] == [o["lifetime"] for o in ours["isakmp_stats"]["IPv4"].values()]
    else:
        assert [r["conn_id"] for r in rows.values()] == [sa.conn_id for sa in sas]


ident = st.builds(IdentView, addr=ipv4, mask=st.sampled_from(["255.255.255.255", "0.0.0.0", "255.255.255.0"]))


@st.composite
def session_view(draw: st.DrawFn) -> CryptoSessionView:
    local, peer = draw(ipv4), draw(ipv4)
    port = draw(st.sampled_from([500, 4500]))
    flows = draw(
        st.lists(
            st.builds(
                SessionFlowView,
                protocol=st.sampled_from([0, 47]),
                local=ident,
                remote=ident,
                active_sas=st.integers(0, 8),
                inbound_pkts=u32,
                inbound_drop=u32,
                inbound_kb=st.one_of(st.none(), st.integers(0, 4_608_000)),
                inbound_sec=st.integers(0, 86400),
                outbound_pkts=u32,
                outbound_drop=u32,
                outbound_kb=st.one_of(st.none(), st.integers(0, 4_608_000)),
                outbound_sec=st.integers(0, 86400),
            ),
            min_size=1,
            max_size=3,
            unique_by=lambda f: (f.protocol, f.local, f.remote),
        )
    )
    return CryptoSessionView(
        interface="Tunnel0",
        peer=peer,
        peer_port=port,
        status=draw(st.sampled_from(["UP-ACTIVE", "UP-IDLE", "DOWN-NEGOTIATING"])),
        profile=draw(st.one_of(st.none(), name)),
        uptime_sec=draw(st.integers(0, 10**7)),
        fvrf=draw(st.one_of(st.none(), name)),
        ivrf=draw(st.one_of(st.none(), name)),
        phase1_id=draw(st.one_of(st.none(), ipv4)),
        ike_sas=(
            SessionIkeSaView(
                local=local,
                local_port=port,
                remote=peer,
                remote_port=port,
                active=draw(st.booleans()),
                session_id=draw(st.integers(0, 9999)),
                capabilities=draw(st.sampled_from(["", "D", "DN"])),
                conn_id=draw(st.integers(1, 99999)),
                lifetime_sec=draw(st.integers(0, 86400)),
            ),
        ),
        flows=tuple(flows),
    )


@BUDGET
@given(session_view(), st.booleans())
def test_session_genie_equals_json(view: CryptoSessionView, detail: bool) -> None:
    text = session.render_text([view], detail)
    genie = genie_parse("iosxe", "show crypto session detail" if detail else "show crypto session", text)
    ours = normalise(session.render_json([view], detail))
    assert contained(genie, ours) == []
    port = genie["interface"]["Tunnel0"]["peer"][view.peer]["port"][str(view.peer_port)]
    assert len(port["ipsec_flow"]) == len(view.flows)
    if detail:
        flow = view.flows[0]
        assert any(f["inbound_pkts_decrypted"] == flow.inbound_pkts for f in port["ipsec_flow"].values())
