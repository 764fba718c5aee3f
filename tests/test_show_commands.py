"""The ``show crypto ...`` dispatcher: keyword matching, filters, ``| json``,
and IOS's error texts (never an exception)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dmvpn.config import RouterConfig, load_config
from dmvpn.show import ipsec_sa
from dmvpn.show.commands import INCOMPLETE, INVALID_INPUT, StateProvider, run_show
from dmvpn.show.views import (
    CryptoSessionView,
    IdentView,
    IpRouteView,
    IpsecInterfaceView,
    IsakmpSaState,
    IsakmpSaView,
    RouteView,
    SessionFlowView,
    SessionIkeSaView,
)
from test_show_seed import seed_views
from test_show_support import SEED


@dataclass
class FakeRouter:
    """A StateProvider holding fixed views: the seed hub."""

    ipsec: list[IpsecInterfaceView] = field(default_factory=seed_views)
    config: RouterConfig = field(default_factory=lambda: load_config(SEED / "hub.cfg"))

    def ipsec_sa_views(self) -> Sequence[IpsecInterfaceView]:
        return self.ipsec

    def isakmp_sa_views(self) -> Sequence[IsakmpSaView]:
        return [
            IsakmpSaView(
                dst="172.17.3.1",
                src="172.17.3.2",
                local="172.17.3.1",
                remote="172.17.3.2",
                state=IsakmpSaState.QM_IDLE,
                conn_id=1001,
                dh_group=15,
                lifetime_sec=2915,
                capabilities="D",
                engine_conn_id=1,
            )
        ]

    def crypto_session_views(self) -> Sequence[CryptoSessionView]:
        host = "255.255.255.255"
        return [
            CryptoSessionView(
                interface="Tunnel0",
                peer=peer,
                peer_port=500,
                uptime_sec=2944,
                phase1_id=peer,
                ike_sas=(SessionIkeSaView("172.17.3.1", 500, peer, 500, session_id=0, conn_id=1001),),
                flows=(SessionFlowView(47, IdentView("172.17.3.1", host), IdentView(peer, host), active_sas=6),),
            )
            for peer in ("172.17.3.2", "172.17.3.3")
        ]

    def running_config(self) -> RouterConfig:
        return self.config

    def ip_route_view(self) -> IpRouteView:
        return IpRouteView((RouteView("10.2.2.0", 24, "C", "connected", 0, 0, None, "Tunnel0"),))


ROUTER = FakeRouter()


def test_fake_router_is_a_state_provider() -> None:
    provider: StateProvider = ROUTER
    assert provider.running_config().hostname == "HUB"
    text = run_show("sh ip ro", provider)
    assert "\nC     10.2.2.0/24 is directly connected, Tunnel0\n" not in text  # a subnet of 10/8
    assert "      10.0.0.0/24 is subnetted, 1 subnets\nC        10.2.2.0 is directly connected, Tunnel0\n" in text
    assert run_show("show ip rout | json", provider).startswith('{\n  "vrf": {')


@pytest.mark.parametrize(
    "command",
    [
        "show crypto ipsec sa peer 172.17.3.2",
        "sh cry ipsec sa pe 172.17.3.2",
        "SHOW CRYPTO IPSEC SA PEER 172.17.3.2",
        "  show   crypto ipsec  sa peer 172.17.3.2  ",
    ],
)
def test_seed_command_and_abbreviations(command: str) -> None:
    seed = (SEED / "hub_show_crypto_ipsec_sa_peer.txt").read_text().split("\n", 1)[1]
    assert run_show(command, ROUTER) == seed


def test_filters() -> None:
    assert run_show("show crypto ipsec sa peer 10.9.9.9", ROUTER) == ""
    assert run_show("show crypto ipsec sa interface Tunnel0", ROUTER) == run_show("show crypto ipsec sa", ROUTER)
    assert run_show("show crypto ipsec sa interface Tunnel9", ROUTER) == ""
    detail = run_show("show crypto ipsec sa peer 172.17.3.2 detail", ROUTER)
    assert "#pkts replay rollover (send): 0" in detail and "#send errors" not in detail
    remote = run_show("show crypto session remote 172.17.3.3 detail", ROUTER)
    assert "Peer: 172.17.3.3 port 500" in remote and "172.17.3.2 port" not in remote


def test_json_suffix() -> None:
    out = json.loads(run_show("show crypto ipsec sa | json", ROUTER))
    assert out == json.loads(json.dumps(ipsec_sa.render_json(seed_views())))
    sa = out["interface"]["Tunnel0"]["ident"]["1"]["outbound_esp_sas"]["spi"]["0x50304C8(84083912)"]
    assert (sa["spi_value"], sa["remaining_kb"], sa["remaining_sec"]) == (84083912, 4608000, 656)
    isakmp = json.loads(run_show("sh cry isa sa det | json", ROUTER))
    assert isakmp["isakmp_stats"]["IPv4"]["1"]["lifetime"] == "00:48:35"
    sessions = json.loads(run_show("show crypto session detail | json", ROUTER))
    assert set(sessions["interface"]["Tunnel0"]["peer"]) == {"172.17.3.2", "172.17.3.3"}
    assert json.loads(run_show("show crypto isakmp policy | json", ROUTER))["isakmp_policy"]["2"]["dh_group"] == 15
    profiles = json.loads(run_show("show crypto ipsec profile | json", ROUTER))["ipsec_profile_name"]
    assert profiles["ENS_ipsec_profile"]["lifetime_kilobytes"] == 4608000
    sets = json.loads(run_show("show crypto ipsec transform-set | json", ROUTER))["transform_set"]
    assert sets["ipsec-transset-ENS"] == {
        "transforms": "esp-aes esp-sha256-hmac",
        "mode": "Transport",
        "cipher": "ESP_AES_CBC",
        "key_bits": 128,
        "auth": "HMAC_SHA2_256",
    }


def test_other_shows() -> None:
    isakmp = run_show("show crypto isakmp sa", ROUTER).splitlines()
    assert isakmp[:3] == [
        "IPv4 Crypto ISAKMP SA",
        "dst             src             state          conn-id status",
        "172.17.3.1      172.17.3.2      QM_IDLE           1001 ACTIVE",
    ]
    detail = run_show("show crypto isakmp sa detail", ROUTER)
    assert "1001  172.17.3.1      172.17.3.2             ACTIVE aes  sha    psk  15 00:48:35 D" in detail
    assert "       Engine-id:Conn-id =  SW:1" in detail
    crypto_session = run_show("show crypto session", ROUTER)
    assert "  IKEv1 SA: local 172.17.3.1/500 remote 172.17.3.2/500 Active" in crypto_session
    assert "  IPSEC FLOW: permit 47 host 172.17.3.1 host 172.17.3.2" in crypto_session
    assert "Protection suite of priority 2" in run_show("show crypto isakmp policy", ROUTER)
    assert "IPSEC profile ENS_ipsec_profile" in run_show("show crypto ipsec profile", ROUTER)
    assert "Transform set ipsec-transset-ENS: { esp-aes esp-sha256-hmac  }" in run_show(
        "show crypto ipsec transform-set", ROUTER
    )


@pytest.mark.parametrize(
    ("command", "column"),
    [
        ("show crypto ipsec sa foo", 21),
        ("show crypto ipsec sa peer 172.17.3.400", 26),
        ("show crypto ipsec sa peer 172.17.3.2 bogus", 37),
        ("show crypto bogus", 12),
        ("shw crypto", 0),
        ("show crypto isakmp sa | json extra", 29),
        ("show crypto isakmp sa | include ACTIVE", 24),
        ("show crypto isakmp policy detail", 26),
    ],
)
def test_invalid_input_caret(command: str, column: int) -> None:
    out = run_show(command, ROUTER, prompt="HUB#")
    assert out == " " * (len("HUB#") + column) + "^\n" + INVALID_INPUT + "\n"


def test_incomplete_and_ambiguous() -> None:
    assert run_show("show crypto", ROUTER) == INCOMPLETE + "\n"
    assert run_show("show crypto ipsec sa peer", ROUTER) == INCOMPLETE + "\n"
    assert run_show("show crypto ipsec sa |", ROUTER) == INCOMPLETE + "\n"
    assert run_show("sh cry i sa", ROUTER) == '% Ambiguous command:  "sh cry i sa"\n'


WORDS = st.sampled_from(
    ["show", "sh", "crypto", "cry", "ipsec", "isakmp", "isa", "sa", "peer", "interface", "detail", "session",
     "remote", "policy", "profile", "transform-set", "|", "json", "172.17.3.2", "::1", "Tunnel0", "x"]
)


@settings(max_examples=300, derandomize=True, deadline=None)
@given(st.one_of(st.text(max_size=60), st.lists(WORDS, max_size=8).map(" ".join)))
def test_never_raises(command: str) -> None:
    out = run_show(command, ROUTER)
    assert isinstance(out, str)
    if out.startswith("%") or "^" in out:
        assert out.endswith((INVALID_INPUT + "\n", INCOMPLETE + "\n", '"\n'))
