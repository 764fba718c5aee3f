"""The renderers reproduce the seed's IOS-XE output line for line: the hub's
SA table (views holding the seed's values) and the config-only shows (from
the config parser's model of the seed's crypto config)."""

from __future__ import annotations

from pathlib import Path

from dmvpn.config import load_config
from dmvpn.show import config_shows, ipsec_sa
from dmvpn.show.views import IdentView, IpsecFlowCounters, IpsecFlowView, IpsecInterfaceView, IpsecSaView
from test_show_support import SEED, genie_parse, normalise

DATA = Path(__file__).parent / "data" / "show"
CRYPTO_MAP = "ENS_ipsec_profile-head-1-IPv4"
ORPHAN_FLAGS, PREVIOUS_FLAGS = 0xFFFFFFFF80004008, 0xFFFFFFFFC0004008


def _sa(spi: int, conn_id: int, flags: int, kb: int, sec: int) -> IpsecSaView:
    return IpsecSaView(
        spi=spi,
        transform="esp-aes esp-sha256-hmac",
        mode="Transport",
        conn_id=conn_id,
        flow_id=conn_id - 2000,
        crypto_map=CRYPTO_MAP,
        remaining_sec=sec,
        remaining_kb=kb,
        sibling_flags=flags,
        replay_window=1024,
    )


def seed_views() -> list[IpsecInterfaceView]:
    """The hub's state in shared/seed/hub_show_crypto_ipsec_sa_peer.txt:
    three pairs (orphan, previous, current) toward 172.17.3.2."""
    flow = IpsecFlowView(
        local_ident=IdentView("172.17.3.1", "255.255.255.255", 47, 0),
        remote_ident=IdentView("172.17.3.2", "255.255.255.255", 47, 0),
        peer="172.17.3.2",
        local_endpoint="172.17.3.1",
        remote_endpoint="172.17.3.2",
        counters=IpsecFlowCounters(
            encaps=430462233,
            encrypt=430462233,
            digest=430462233,
            decaps=155241645,
            decrypt=155241645,
            verify=155241645,
            recv_errors=1560,
        ),
        plaintext_mtu=1458,
        path_mtu=1500,
        ip_mtu=1500,
        ip_mtu_idb="GigabitEthernet0/0/2",
        current_outbound_spi=0x290E38E9,
        inbound_esp=(
            _sa(0xCDD2533F, 19415, ORPHAN_FLAGS, 4608000, 656),
            _sa(0xC14574C6, 19691, PREVIOUS_FLAGS, 4552005, 3533),
            _sa(0x4F73B083, 19697, ORPHAN_FLAGS, 4553540, 3568),
        ),
        outbound_esp=(
            _sa(0x50304C8, 19416, ORPHAN_FLAGS, 4608000, 656),
            _sa(0x50919C87, 19692, PREVIOUS_FLAGS, 884442, 3533),
            _sa(0x290E38E9, 19698, ORPHAN_FLAGS, 1302222, 3568),
        ),
    )
    return [IpsecInterfaceView("Tunnel0", CRYPTO_MAP, "172.17.3.1", (flow,))]


def _seed_output(name: str) -> str:
    """A seed show file without its ``#sh ...`` prompt line."""
    return (SEED / name).read_text().split("\n", 1)[1]


def test_seed_sa_table_is_identical() -> None:
    ours = ipsec_sa.render_text(ipsec_sa.select(seed_views(), peer="172.17.3.2"))
    assert ours.splitlines() == _seed_output("hub_show_crypto_ipsec_sa_peer.txt").splitlines()


def test_seed_sa_table_genie_values_match_json() -> None:
    views = seed_views()
    text = ipsec_sa.render_text(views)
    genie = genie_parse("iosxe", "show crypto ipsec sa peer 172.17.3.2", text)
    ours = normalise(ipsec_sa.render_json(views))
    flow_g = genie["interface"]["Tunnel0"]["ident"]["1"]
    flow_o = ours["interface"]["Tunnel0"]["ident"]["1"]
    assert flow_g["current_outbound_spi"] == flow_o["current_outbound_spi"] == "0x290E38E9(688797929)"
    assert flow_g["recv_errors"] == flow_o["recv_errors"] == 1560
    for direction in ("inbound_esp_sas", "outbound_esp_sas"):
        assert list(flow_g[direction]["spi"]) == list(flow_o[direction]["spi"])
        for spi, sa in flow_g[direction]["spi"].items():
            for key, value in sa.items():
                assert flow_o[direction]["spi"][spi][key] == value, (spi, key)
    # the orphan pair's outbound SPI: hex without a leading zero
    assert "0x50304C8(84083912)" in flow_g["outbound_esp_sas"]["spi"]


def _seed_section(command: str) -> str:
    """One command's output from show_crypto_policies_and_profiles.txt."""
    text = (SEED / "show_crypto_policies_and_profiles.txt").read_text()
    chunks = text.split("#sh ")
    body = next(c for c in chunks if c.startswith(command + "\n"))
    return body.split("\n", 1)[1]


def test_seed_isakmp_policy_is_identical() -> None:
    config = load_config(SEED / "hub.cfg")
    ours = config_shows.render_isakmp_policy(config)
    assert ours.rstrip().splitlines() == _seed_section("crypto isakmp policy").rstrip().splitlines()


def test_seed_ipsec_profiles_are_identical() -> None:
    config = load_config(DATA / "seed_crypto_profiles.cfg")
    ours = config_shows.render_ipsec_profiles(config)
    assert ours.rstrip().splitlines() == _seed_section("crypto ipsec profile").rstrip().splitlines()


def test_seed_ipsec_profiles_genie() -> None:
    config = load_config(DATA / "seed_crypto_profiles.cfg")
    genie = genie_parse("iosxe", "show crypto ipsec profile", config_shows.render_ipsec_profiles(config))
    ours = config_shows.ipsec_profile_json(config)["ipsec_profile_name"]
    assert set(genie["ipsec_profile_name"]) == set(ours)
    for name, prof in genie["ipsec_profile_name"].items():
        assert prof["security_association_lifetime"] == ours[name]["security_association_lifetime"]
        assert prof["psf"] == ours[name]["pfs"]
        assert prof["responder_only"] == ours[name]["responder_only"]
        for ts_name, ts in prof["tranform_sets"].items():
            words = f"{ts['transform_set_name']} {ts['transform_set_method']}"
            assert words == ours[name]["transform_sets"][ts_name]["transforms"]
