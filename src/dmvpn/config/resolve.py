"""Second pass: apply IOS defaults, resolve names, check references and
freeze the builders into the :mod:`dmvpn.config.model` dataclasses.

IOS defaults for a ``crypto isakmp policy`` that omits a line are those of
IOS's "Default protection suite" (Cisco IOS Security Command Reference,
``encryption``/``hash``/``authentication``/``group``/``lifetime`` (IKE
policy)): DES, SHA-1, RSA signatures, group 1, 86400 s. DES and RSA
signatures are not implemented here, so a policy relying on those defaults
is kept but flagged (``IsakmpPolicy.usable`` is False) with a warning."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Interface
from typing import TYPE_CHECKING

from dmvpn.config.algorithms import DhGroup, EncryptionAlgorithm, HashAlgorithm, IkeAuthMethod
from dmvpn.config.builders import InterfaceBuilder, PolicyBuilder, SaSettings
from dmvpn.config.ikev2_cmds import build_ikev2
from dmvpn.config.model import (
    DEFAULT_HOSTNAME,
    DEFAULT_ISAKMP_LIFETIME,
    DEFAULT_NHRP_HOLDTIME,
    DEFAULT_NHRP_REDIRECT_TIMEOUT,
    AccessList,
    CryptoMap,
    CryptoMapEntry,
    Interface,
    IpsecProfile,
    IsakmpPolicy,
    NhrpConfig,
    NhrpServer,
    RouterConfig,
    SaLifetime,
    TransformSet,
    TunnelConfig,
    TunnelMode,
)
from dmvpn.config.routing_cmds import build_routing
from dmvpn.config.values import LineError, interface_name

if TYPE_CHECKING:
    from dmvpn.config.parser import _Parser


def build(p: _Parser) -> RouterConfig:
    """Build the model from a finished first pass, reporting problems on
    ``p``. The result is meaningful only when ``p.errors`` is empty."""
    sa_default = _global_lifetime(p.global_sa)
    transform_sets = {
        name: TransformSet(
            name, b.transforms.cipher, b.transforms.key_bits, b.transforms.auth, b.mode, b.transforms.ios_text, b.line
        )
        for name, b in p.transform_sets.items()
    }
    acls = {name: AccessList(name, b.extended, tuple(b.entries)) for name, b in p.acls.items()}
    policies = tuple(_policy(p, b) for _, b in sorted(p.policies.items()))
    if any(pol.authentication is IkeAuthMethod.PRE_SHARED_KEY for pol in policies) and not p.keys:
        p.warn(policies[0].line, "pre-shared key authentication is configured but there is no crypto isakmp key")
    ikev2 = build_ikev2(p.ikev2, p.error, p.warn)
    profiles = {}
    for name, b in p.profiles.items():
        if b.ikev2_profile and b.ikev2_profile[0] not in ikev2.profiles:
            ref, line = b.ikev2_profile
            p.error(line, f"set ikev2-profile: crypto ikev2 profile '{ref}' is not defined")
        sets = _transform_set_refs(p, b.sa)
        if not b.sa.transform_sets:
            p.warn(b.line, f"crypto ipsec profile {name} has no 'set transform-set': it cannot protect traffic")
        seconds, kilobytes = _lifetime(b.sa, sa_default)
        profiles[name] = IpsecProfile(
            name, sets, seconds, kilobytes, b.sa.pfs_group, b.idle_time, b.responder_only, b.line,
            b.ikev2_profile[0] if b.ikev2_profile else None,
        )
    interfaces = {name: _interface(p, b, profiles) for name, b in p.interfaces.items()}
    _check_overlaps(p, interfaces)
    _check_shared_sources(p, interfaces)
    crypto_maps = _crypto_maps(p, sa_default, acls, interfaces)
    for ib in p.interfaces.values():
        if ib.crypto_map and ib.crypto_map[0] not in crypto_maps:
            p.error(ib.crypto_map[1], f"crypto map '{ib.crypto_map[0]}' is not defined")
    for r in p.routes:
        if r.interface and not r.interface.startswith("Null") and r.interface not in interfaces:
            p.error(r.line, f"ip route: interface {r.interface} is not defined")
    return RouterConfig(
        source=p.source,
        hostname=p.hostname[0] if p.hostname else DEFAULT_HOSTNAME,
        isakmp_policies=policies,
        isakmp_keys=tuple(p.keys),
        isakmp_keepalive=p.keepalive,
        isakmp_nat_keepalive=p.nat_keepalive,
        invalid_spi_recovery=p.invalid_spi_recovery,
        transform_sets=transform_sets,
        ipsec_sa_lifetime=sa_default,
        replay_window_size=p.replay_window,
        ipsec_profiles=profiles,
        crypto_maps=crypto_maps,
        acls=acls,
        interfaces=interfaces,
        routes=tuple(p.routes),
        ikev2=ikev2,
        routing=build_routing(p.ospf, p.ospf_interfaces, p.bgp, set(interfaces), p.error, p.warn),
    )


def _policy(p: _Parser, b: PolicyBuilder) -> IsakmpPolicy:
    defaulted = tuple(
        name
        for name, value in (
            ("encryption", b.encryption),
            ("hash", b.hash),
            ("authentication", b.authentication),
            ("group", b.group),
            ("lifetime", b.lifetime),
        )
        if value is None
    )
    policy = IsakmpPolicy(
        priority=b.priority,
        encryption=b.encryption or EncryptionAlgorithm.DES_CBC,
        key_bits=b.key_bits,
        hash=b.hash or HashAlgorithm.SHA,
        authentication=b.authentication or IkeAuthMethod.RSA_SIGNATURES,
        group=b.group or DhGroup.MODP_768,
        lifetime=b.lifetime or DEFAULT_ISAKMP_LIFETIME,
        defaulted=defaulted,
        line=b.line,
    )
    missing = [n for n in ("encryption", "authentication") if n in defaulted]
    if missing:
        names = " and ".join(f"'{n}'" for n in missing)
        plural = "s" if len(missing) > 1 else ""
        p.warn(
            b.line,
            f"crypto isakmp policy {b.priority} has no {names} line{plural}: the IOS defaults "
            "(des, rsa-sig) are not supported here, so this policy is never used",
        )
    return policy


def _global_lifetime(sa: SaSettings) -> SaLifetime:
    default = SaLifetime()
    seconds = sa.lifetime_seconds or default.seconds
    kilobytes = None if sa.kilobytes_disabled else (sa.lifetime_kilobytes or default.kilobytes)
    return SaLifetime(seconds, kilobytes)


def _lifetime(sa: SaSettings, default: SaLifetime) -> tuple[int, int | None]:
    """A profile's or map entry's lifetime: its own settings, else the
    global ``crypto ipsec security-association lifetime``."""
    seconds = sa.lifetime_seconds or default.seconds
    if sa.kilobytes_disabled:
        return seconds, None
    return seconds, sa.lifetime_kilobytes or default.kilobytes


def _transform_set_refs(p: _Parser, sa: SaSettings) -> tuple[str, ...]:
    for name, line in sa.transform_sets:
        if name not in p.transform_sets and ("transform-set", name) not in p.broken:
            p.error(line, f"transform set '{name}' is not defined")
    return tuple(name for name, _ in sa.transform_sets)


def _crypto_maps(p: _Parser, sa_default: SaLifetime, acls: dict[str, AccessList],
                 interfaces: dict[str, Interface]) -> dict[str, CryptoMap]:
    grouped: dict[str, list[CryptoMapEntry]] = {}
    for (name, seq), b in sorted(p.map_entries.items()):
        sets = _transform_set_refs(p, b.sa)
        if not b.peers:
            p.warn(b.line, f"crypto map {name} {seq} has no 'set peer': the entry is incomplete and unused")
        if not b.sa.transform_sets:
            p.warn(b.line, f"crypto map {name} {seq} has no 'set transform-set': the entry is incomplete and unused")
        acl_name = None
        if b.acl is None:
            p.warn(b.line, f"crypto map {name} {seq} has no 'match address': the entry is incomplete and unused")
        else:
            acl_name, line = b.acl
            if acl_name not in acls:
                if ("acl", acl_name) not in p.broken:
                    p.error(line, f"match address: access-list '{acl_name}' is not defined")
            elif not acls[acl_name].extended:
                p.error(line, f"match address: access-list '{acl_name}' is a standard list, "
                              "crypto maps need an extended one")
        seconds, kilobytes = _lifetime(b.sa, sa_default)
        grouped.setdefault(name, []).append(
            CryptoMapEntry(name, seq, tuple(b.peers), sets, acl_name, seconds, kilobytes, b.sa.pfs_group, b.line)
        )
    for name, (iface, line) in p.map_local.items():
        if iface not in interfaces:
            p.error(line, f"crypto map {name} local-address: interface {iface} is not defined")
        if name not in grouped:
            p.error(line, f"crypto map {name} local-address: crypto map {name} has no entries")
    return {
        name: CryptoMap(name, tuple(entries), p.map_local.get(name, (None, 0))[0])
        for name, entries in grouped.items()
    }


def _tunnel(p: _Parser, b: InterfaceBuilder, profiles: dict[str, IpsecProfile]) -> TunnelConfig:
    source_iface = None
    source_addr: IPv4Address | None = None
    if b.tunnel_source:
        text, line = b.tunnel_source
        if text[0].isdigit():
            try:
                source_addr = IPv4Address(text)
            except ValueError:
                p.error(line, f"tunnel source: expected an interface name or an IPv4 address, got '{text}'")
        else:
            try:
                source_iface = interface_name(text, "tunnel source")
            except LineError as exc:
                p.error(line, str(exc))
            else:
                src = p.interfaces.get(source_iface)
                if src is None:
                    p.error(line, f"tunnel source: interface {source_iface} is not defined")
                elif source_iface == b.name:
                    p.error(line, "tunnel source: a tunnel cannot be its own source")
                elif src.address is None:
                    p.warn(line, f"tunnel source {source_iface} has no IP address: the tunnel stays down")
                else:
                    source_addr = src.address.ip
    elif b.has_tunnel_lines:
        p.warn(b.line, f"{b.name} has no 'tunnel source': the tunnel stays down")
    if b.tunnel_mode is TunnelMode.GRE_MULTIPOINT and b.tunnel_destination is not None:
        p.error(b.tunnel_destination_line, "tunnel destination is not allowed with 'tunnel mode gre multipoint'")
    if b.tunnel_mode is TunnelMode.GRE_IP and b.tunnel_destination is None and b.has_tunnel_lines:
        p.warn(b.line, f"{b.name} is point-to-point GRE without 'tunnel destination': the tunnel stays down")
    profile = None
    if b.protection:
        profile, line = b.protection
        if profile not in profiles:
            p.error(line, f"tunnel protection: crypto ipsec profile '{profile}' is not defined")
    return TunnelConfig(
        mode=b.tunnel_mode,
        source_interface=source_iface,
        source_address=source_addr,
        destination=b.tunnel_destination,
        key=b.tunnel_key,
        protection_profile=profile,
        protection_shared=b.protection_shared,
    )


def _nhrp(p: _Parser, b: InterfaceBuilder) -> NhrpConfig:
    maps = {m.overlay: m.nbma for m in b.nhrp_maps}
    servers = []
    for s in b.nhrp_nhs:
        nbma = s.nbma if s.nbma is not None else maps.get(s.address) if s.address else None
        if nbma is None:
            p.warn(s.line, f"ip nhrp nhs {s.address}: no NBMA address (add 'nbma A' or an 'ip nhrp map')")
        if s.address is not None and b.address is not None and s.address not in b.address.network:
            p.warn(s.line, f"ip nhrp nhs {s.address} is outside {b.name}'s subnet {b.address.network}")
        servers.append(NhrpServer(s.address, nbma, s.multicast, s.priority, s.line))
    if b.nhrp_network_id is None:
        p.warn(b.line, f"{b.name} has 'ip nhrp' lines but no 'ip nhrp network-id': NHRP is off")
    return NhrpConfig(
        network_id=b.nhrp_network_id,
        holdtime=b.nhrp_holdtime or DEFAULT_NHRP_HOLDTIME,
        authentication=b.nhrp_authentication,
        redirect=b.nhrp_redirect,
        shortcut=b.nhrp_shortcut,
        nhs=tuple(servers),
        maps=tuple(b.nhrp_maps),
        multicast_nbma=tuple(b.nhrp_multicast),
        multicast_dynamic=b.nhrp_multicast_dynamic,
        registration_timeout=b.nhrp_registration_timeout,
        registration_no_unique=b.nhrp_registration_no_unique,
        redirect_timeout=b.nhrp_redirect_timeout or DEFAULT_NHRP_REDIRECT_TIMEOUT,
        responder=b.nhrp_responder,
    )


def _interface(p: _Parser, b: InterfaceBuilder, profiles: dict[str, IpsecProfile]) -> Interface:
    tunnel = _tunnel(p, b, profiles) if b.is_tunnel else None
    nhrp = _nhrp(p, b) if b.has_nhrp_lines else None
    if tunnel is None and nhrp is not None:
        p.warn(b.line, f"{b.name} is not a Tunnel interface: its 'ip nhrp' lines are not used")
    crypto_map = b.crypto_map[0] if b.crypto_map else None
    return Interface(b.name, b.address, b.mtu, b.shutdown, crypto_map, tunnel, nhrp, b.line)


def _check_overlaps(p: _Parser, interfaces: dict[str, Interface]) -> None:
    """IOS refuses an address whose subnet overlaps another interface's
    ("% 10.2.2.0 overlaps with Tunnel0")."""
    seen: list[tuple[IPv4Interface, str]] = []
    for iface in sorted(interfaces.values(), key=lambda i: i.line):
        if iface.address is None:
            continue
        for other, name in seen:
            if iface.address.network.overlaps(other.network):
                line = p.interfaces[iface.name].seen.lines.get("ip address", iface.line)
                address = iface.address.with_netmask.replace("/", " ")
                p.error(line, f"ip address {address}: {iface.address.network} overlaps with {name} ({other})")
                break
        seen.append((iface.address, iface.name))


def _check_shared_sources(p: _Parser, interfaces: dict[str, Interface]) -> None:
    """Protected tunnels on one source need ``tunnel protection ... shared``
    (one SA database for all of them), and multipoint tunnels on one source
    must differ in their tunnel key to tell their GRE packets apart."""
    by_source: dict[IPv4Address, list[Interface]] = {}
    for iface in interfaces.values():
        if iface.tunnel and iface.tunnel.source_address is not None:
            by_source.setdefault(iface.tunnel.source_address, []).append(iface)
    for source, group in by_source.items():
        if len(group) < 2:
            continue
        for iface in group:
            t = iface.tunnel
            assert t is not None
            if t.protection_profile and not t.protection_shared:
                p.warn(iface.line, f"{iface.name} shares source {source} with other protected tunnels "
                       "but its 'tunnel protection' lacks 'shared'")
        keys: dict[int | None, str] = {}
        for iface in group:
            t = iface.tunnel
            assert t is not None
            if t.mode is TunnelMode.GRE_MULTIPOINT:
                if t.key in keys:
                    p.warn(iface.line, f"{iface.name} and {keys[t.key]} are multipoint tunnels on source {source} "
                           f"with the same tunnel key ({t.key if t.key is not None else 'none'})")
                keys.setdefault(t.key, iface.name)
