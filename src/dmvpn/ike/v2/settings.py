"""What an IKEv2 negotiation takes from the IOS-XE configuration: the
``crypto ikev2 policy`` proposals for a local address, the ``crypto ikev2
profile`` (``set ikev2-profile`` of the tunnel's IPsec profile, else the
first whose ``match identity remote`` holds the peer), the keyring's
pre-shared keys and the transform sets (RFC 7296 2.15: ``local`` signs our
AUTH, ``remote`` checks the peer's)."""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv4Address

from dmvpn.config import RouterConfig
from dmvpn.config.ikev2_model import Ikev2Profile, Ikev2Proposal
from dmvpn.ike.proposals import ChildPolicy, esp_transform
from dmvpn.ike.v2.ike_auth import AuthConfig
from dmvpn.wire.isakmp_registry import EncapsulationMode


def proposals_for(config: RouterConfig, local: str) -> list[Ikev2Proposal]:
    """The proposals of the ``crypto ikev2 policy`` sets matching ``local``
    (IOS-XE's smart default when none is configured)."""
    cfg = config.ikev2
    out: list[Ikev2Proposal] = []
    for _name, pol in sorted(cfg.policies.items()):
        if pol.match_local and IPv4Address(local) not in pol.match_local:
            continue
        for name in pol.proposals:
            prop = cfg.proposals.get(name)
            if prop is not None and prop.complete and prop not in out:
                out.append(prop)
    return out


def ikev2_profile_for(config: RouterConfig, policy: ChildPolicy, peer: str) -> Ikev2Profile | None:
    """The ``set ikev2-profile`` of the policy's IPsec profile, else the
    first profile matching the peer."""
    iface = config.interfaces.get(policy.interface)
    tun = iface.tunnel if iface is not None else None
    name = None
    if tun is not None and tun.protection_profile is not None:
        ipp = config.ipsec_profiles.get(tun.protection_profile)
        name = ipp.ikev2_profile if ipp is not None else None
    if name is not None and name in config.ikev2.profiles:
        return config.ikev2.profiles[name]
    return config.ikev2.profile_for(peer)


def auth_config(config: RouterConfig, policy: ChildPolicy | None, local: str, peer: str) -> AuthConfig | None:
    """IKE_AUTH settings for ``peer``: the keyring's keys, the policy's transforms."""
    if policy is None:
        return None
    prof = ikev2_profile_for(config, policy, peer)
    ring = config.ikev2.keyrings.get(prof.keyring) if prof and prof.keyring else None
    entry = ring.peer_for(peer) if ring is not None else None
    if entry is None:
        return None
    transport = all(ts.mode == EncapsulationMode.TRANSPORT for ts in policy.transform_sets)
    return AuthConfig(IPv4Address(local), IPv4Address(peer), entry.local_key.encode(), entry.remote_key.encode(),
                      [esp_transform(ts) for ts in policy.transform_sets], transport, policy.protocol or 47)


def responder_policy(config: RouterConfig, policies: Sequence[ChildPolicy], local: str,
                     peer: str) -> ChildPolicy | None:
    """The tunnel protection policy a peer's CHILD_SA is for: a GRE
    policy of a tunnel sourced at ``local`` that allows ``peer``."""
    for policy in policies:
        iface = config.interfaces.get(policy.interface)
        source = iface.tunnel.source_address if iface is not None and iface.tunnel is not None else None
        if policy.allows_peer(peer) and (source is None or str(source) == local):
            return policy
    return None
