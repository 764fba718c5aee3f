"""Test-only helpers: the seed's hub and spoke with their ``crypto isakmp``
sections replaced by IOS-XE IKEv2 equivalents (proposal, policy, keyring,
profile, ``set ikev2-profile``), in the sim."""

from __future__ import annotations

import re

from router_lab import build, hub_text, spoke_text

IKEV2_SECTIONS = """\
crypto ikev2 proposal ENS-PROP
 encryption aes-cbc-256
 integrity sha256
 group 19
crypto ikev2 policy ENS-POL
 match fvrf any
 proposal ENS-PROP
crypto ikev2 keyring ENS-KR
 peer ANY
  address 0.0.0.0 0.0.0.0
  pre-shared-key local seed-lab-psk
  pre-shared-key remote seed-lab-psk
crypto ikev2 profile ENS-IKEV2
 match identity remote address 0.0.0.0 0.0.0.0
 authentication remote pre-share
 authentication local pre-share
 keyring local ENS-KR
{dpd}lifetime {lifetime}
"""


def ikev2(text: str, dpd: str = "", lifetime: int = 86400) -> str:
    """``text`` (a seed config) on IKEv2: its isakmp policy and key lines
    replaced, ``set ikev2-profile ENS-IKEV2`` in the IPsec profile."""
    text = re.sub(r"crypto isakmp policy 2\n( [^\n]*\n)+", "", text)
    text = re.sub(r"crypto isakmp key [^\n]*\n", "", text)
    sections = IKEV2_SECTIONS.format(dpd=f" dpd {dpd}\n " if dpd else " ", lifetime=lifetime)
    text = text.replace("crypto ipsec transform-set", sections + "crypto ipsec transform-set", 1)
    return text.replace(" set transform-set ipsec-transset-ENS\n",
                        " set transform-set ipsec-transset-ENS\n set ikev2-profile ENS-IKEV2\n")


def build_v2(seed: int = 1, profile: str = "cisco-iosxe", dpd: str = "", lifetime: int = 86400,
             extra_profile: str = "", **kw):
    """The IKEv2 seed lab: (sim, hub, spoke, wan)."""
    return build(seed, profile=profile, hub=ikev2(hub_text(extra_profile), dpd, lifetime),
                 spoke=ikev2(spoke_text(extra_profile), dpd, lifetime), **kw)
