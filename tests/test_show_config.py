"""The config-only shows (isakmp policy, ipsec profile, transform-set) for
config variants the seed does not cover: AES-256 and GCM sets, PFS, the
volume lifetime disabled, several ISAKMP policies."""

from __future__ import annotations

from pathlib import Path

from dmvpn.config import load_config
from dmvpn.show import config_shows
from test_show_support import genie_parse

CONFIG = load_config(Path(__file__).parent / "data" / "show" / "profile_variants.cfg")


def test_isakmp_policies_by_priority() -> None:
    text = config_shows.render_isakmp_policy(CONFIG)
    assert text.splitlines()[1:9] == [
        "Global IKE policy",
        "Protection suite of priority 10",
        "        encryption algorithm:   AES - Advanced Encryption Standard (256 bit keys).",
        "        hash algorithm:         Secure Hash Standard 2 (256 bit)",
        "        authentication method:  Pre-Shared Key",
        "        Diffie-Hellman group:   #14 (2048 bit)",
        "        lifetime:               86400 seconds, no volume limit",
        "Protection suite of priority 20",
    ]
    assert "        encryption algorithm:   Three key triple DES" in text
    assert "        Diffie-Hellman group:   #2 (1024 bit)" in text


def test_transform_sets_use_show_names() -> None:
    lines = config_shows.render_transform_sets(CONFIG).splitlines()
    assert lines == [
        "Transform set GCM: { esp-gcm 256  }",
        "   will negotiate = { Tunnel,  },",
        "",
        "Transform set TS256: { esp-256-aes esp-sha256-hmac  }",
        "   will negotiate = { Tunnel,  },",
        "",
        "Transform set default: { esp-aes esp-sha-hmac  }",
        "   will negotiate = { Transport,  },",
        "",
    ]


def test_profile_with_pfs_and_no_volume_limit_genie() -> None:
    text = config_shows.render_ipsec_profiles(CONFIG)
    assert "        PFS (Y/N): Y\n        DH group:  group14\n" in text
    genie = genie_parse("iosxe", "show crypto ipsec profile", text)["ipsec_profile_name"]
    ours = config_shows.ipsec_profile_json(CONFIG)["ipsec_profile_name"]
    assert list(genie) == list(ours) == ["P1", "default"]
    assert genie["P1"]["security_association_lifetime"] == ours["P1"]["security_association_lifetime"] == "1800 seconds"
    assert ours["P1"]["lifetime_kilobytes"] is None
    assert genie["P1"]["dh_group"] == ours["P1"]["dh_group"] == "group14"
    assert list(genie["P1"]["tranform_sets"]) == list(ours["P1"]["transform_sets"]) == ["TS256", "GCM"]
    ts = genie["P1"]["tranform_sets"]["TS256"]
    assert f"{ts['transform_set_name']} {ts['transform_set_method']}" == "esp-256-aes esp-sha256-hmac"
