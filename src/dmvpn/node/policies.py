"""What the configuration asks IKE to protect, as :class:`ChildPolicy` values.

* ``tunnel protection ipsec profile P [shared]`` on a GRE tunnel: GRE (IP
  protocol 47) between the tunnel source and each peer's NBMA address, host
  to host, with the profile's transform sets, lifetimes and PFS group. IOS
  names the resulting crypto map ``P-head-1`` (``-IPv4`` in IOS-XE).
* ``crypto map M`` entries on an interface: the ACL's permit lines as
  subnet selectors toward the entry's peers (site-to-site, usually tunnel
  mode).
"""

from __future__ import annotations

from dmvpn.config import AclAction, RouterConfig
from dmvpn.ike.proposals import ChildPolicy
from dmvpn.wire.ipv4 import IpProto

#: IP protocol 47 as a plain int (the data path compares packet bytes with it).
GRE_PROTOCOL = int(IpProto.GRE)


class PolicyError(ValueError):
    """The configuration names something IKE cannot use (one line, no traceback)."""


def crypto_map_tag(profile: str) -> str:
    """The crypto map IOS-XE builds for a tunnel protection profile."""
    return f"{profile}-head-1-IPv4"


def child_policies(config: RouterConfig) -> list[ChildPolicy]:
    """Every child policy of ``config``, tunnel protection first."""
    out: list[ChildPolicy] = []
    for iface in config.interfaces.values():
        tun = iface.tunnel
        if tun is None or tun.protection_profile is None:
            continue
        profile = config.ipsec_profiles.get(tun.protection_profile)
        if profile is None:
            raise PolicyError(f"{iface.name}: tunnel protection names unknown profile {tun.protection_profile}")
        sets = tuple(config.transform_sets[n] for n in profile.transform_sets if n in config.transform_sets)
        if not sets:
            raise PolicyError(f"ipsec profile {profile.name}: no usable transform set")
        out.append(ChildPolicy(
            name=crypto_map_tag(profile.name), interface=iface.name, transform_sets=sets,
            lifetime_seconds=profile.lifetime_seconds, lifetime_kilobytes=profile.lifetime_kilobytes,
            pfs_group=int(profile.pfs_group) if profile.pfs_group is not None else None,
            protocol=GRE_PROTOCOL,
            peers=(tun.destination,) if tun.destination is not None else (),
        ))
    for iface in config.interfaces.values():
        if iface.crypto_map is None:
            continue
        cmap = config.crypto_maps.get(iface.crypto_map)
        if cmap is None:
            raise PolicyError(f"{iface.name}: crypto map {iface.crypto_map} is not defined")
        for entry in cmap.entries:
            sets = tuple(config.transform_sets[n] for n in entry.transform_sets if n in config.transform_sets)
            acl = config.acls.get(entry.acl) if entry.acl else None
            if not sets or acl is None:
                continue
            for line in acl.entries:
                if line.action is not AclAction.PERMIT:
                    continue
                out.append(ChildPolicy(
                    name=f"{cmap.name}", interface=iface.name, transform_sets=sets,
                    lifetime_seconds=entry.lifetime_seconds, lifetime_kilobytes=entry.lifetime_kilobytes,
                    pfs_group=int(entry.pfs_group) if entry.pfs_group is not None else None,
                    protocol=line.protocol or 0, local=line.source, remote=line.destination,
                    peers=entry.peers,
                ))
    return out
