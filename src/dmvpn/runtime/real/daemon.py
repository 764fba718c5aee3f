"""Assemble a real runtime: open the underlay sockets, the TUN devices and
the control socket for an engine, closing whatever was opened if a later
step fails (so a failed start leaves no device or socket behind).

:func:`router_runtime` does it for a :class:`~dmvpn.node.router.Router` built
from an IOS configuration: every addressed, non-shutdown physical interface
becomes an underlay interface (UDP 500/4500 + raw ESP), every tunnel
interface with an address a TUN device with that address and ``ip mtu``,
and every interface with a ``crypto map`` a TUN device without an address
through which the OS sends what the map protects: engine-side name
``kernel:<interface>``, Linux name the next in the ``--tun-name`` sequence
after the tunnels' (``NAME``, ``NAME1`` ...), MTU 1400, a route for each
permit line's destination network (see :mod:`dmvpn.node.crypto_map`).
The router runs NHRP as configured (registrations, resolutions, shortcuts)
and learns the routes a routing daemon installs into its tunnels' TUNs
(:mod:`dmvpn.runtime.real.kernel_routes`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TextIO

from dmvpn.config import RouterConfig
from dmvpn.node.crypto_map import CRYPTO_MAP_TUN_MTU, build_maps, kernel_iface, kernel_routes
from dmvpn.node.policies import PolicyError, child_policies
from dmvpn.node.routing import RoutingTable
from dmvpn.runtime.randomness import SystemRandomSource
from dmvpn.runtime.real.control import ControlServer
from dmvpn.runtime.real.errors import RuntimeSetupError
from dmvpn.runtime.real.kernel_routes import KernelRouteWatcher
from dmvpn.runtime.real.loop import LogPrinter, RealRuntime, Watcher
from dmvpn.runtime.real.tun import TUN_CLONE_DEVICE, TunDevice, TunSpec, check_ifname
from dmvpn.runtime.real.underlay import Underlay, UnderlaySpec
from dmvpn.sansio import Engine
from dmvpn.show.debug_log import IosClock

#: Tunnel MTU when the config has no ``ip mtu``: what IOS DMVPN configs use,
#: so that ESP + GRE stay under a 1500-byte underlay (REFERENCE.md).
DEFAULT_TUNNEL_MTU = 1400
#: What the router is told when the daemon stops: ``clear crypto sa`` sends
#: a DELETE (RFC 2408 section 3.15) for every IPsec SA pair, so the peers do
#: not keep sending into SAs that are gone.
SHUTDOWN_COMMAND = "clear crypto sa"


@dataclass(slots=True)
class DaemonSpec:
    """Everything a runtime opens besides the engine."""

    underlay: list[UnderlaySpec]
    tuns: list[TunSpec] = field(default_factory=list)
    control: Path | None = None
    tun_clone: str = TUN_CLONE_DEVICE
    shutdown_command: str | None = None
    #: UDP GSO/GRO for ESP in UDP 4500 (falls back where the kernel refuses)
    udp_offload: bool = True
    #: TUN offload mode (:data:`~dmvpn.runtime.real.tun.TUN_OFFLOAD_MODES`)
    tun_offload: str = "none"


def open_runtime(engine_factory: Callable[[IosClock], Engine], spec: DaemonSpec, stream: TextIO,
                 categories: set[str] | None = None,
                 watcher_factory: Callable[[Engine], tuple[Watcher, ...]] | None = None) -> RealRuntime:
    """Open everything in ``spec`` and build the engine (given the IOS clock
    whose time 0 is now) and its watchers (``watcher_factory``, given the
    engine, once the TUN devices exist); raises :class:`RuntimeSetupError`
    having closed what it opened."""
    opened_tuns: list[TunDevice] = []
    control: ControlServer | None = None
    watchers: tuple[Watcher, ...] = ()
    underlay = Underlay(spec.underlay, offload=spec.udp_offload)
    try:
        for tun_spec in spec.tuns:
            opened_tuns.append(TunDevice(tun_spec, spec.tun_clone, offload=spec.tun_offload))
        if spec.control is not None:
            control = ControlServer(spec.control)
        clock = IosClock(base=datetime.now())
        engine = engine_factory(clock)
        if watcher_factory is not None:
            watchers = watcher_factory(engine)
        return RealRuntime(engine, underlay, opened_tuns, control, LogPrinter(stream, clock, categories),
                           shutdown_command=spec.shutdown_command, watchers=watchers)
    except BaseException:
        for watcher in watchers:
            watcher.close()
        if control is not None:
            control.close()
        for tun in opened_tuns:
            tun.close()
        underlay.close()
        raise


def tun_names(base: str, count: int) -> list[str]:
    """``base`` for one tunnel, ``base``, ``base1``, ... for several."""
    return [base if i == 0 else f"{base}{i}" for i in range(count)]


def router_spec(config: RouterConfig, *, control: Path | None, tun_name: str,
                tun_clone: str = TUN_CLONE_DEVICE, udp_offload: bool = True,
                tun_offload: str = "none") -> DaemonSpec:
    """The sockets and devices a router with ``config`` needs."""
    underlay = [UnderlaySpec(i.name, i.address.ip) for i in config.interfaces.values()
                if i.tunnel is None and i.address is not None and not i.shutdown]
    if not underlay:
        raise RuntimeSetupError(f"{config.source}: no physical interface with an ip address: "
                                f"nothing to send IKE and ESP from")
    tunnels = [i for i in config.tunnels() if i.address is not None and not i.shutdown]
    try:
        maps = list(build_maps(config, child_policies(config)).values())
    except PolicyError as err:
        raise RuntimeSetupError(f"{config.source}: {err}") from None
    names = tun_names(tun_name, len(tunnels) + len(maps))
    for name in names:
        check_ifname(name)
    tuns = [TunSpec(i.name, name, ipaddress.IPv4Interface(i.address), i.mtu or DEFAULT_TUNNEL_MTU,
                    tunnel_routes(config, i.name))
            for i, name in zip(tunnels, names, strict=False)]
    tuns += [TunSpec(kernel_iface(m.interface), name, None, CRYPTO_MAP_TUN_MTU,
                     tuple((net, None) for net in kernel_routes(m)))
             for m, name in zip(maps, names[len(tunnels):], strict=True)]
    return DaemonSpec(underlay, tuns, control, tun_clone, SHUTDOWN_COMMAND, udp_offload, tun_offload)


def tunnel_routes(config: RouterConfig, iface: str
                  ) -> tuple[tuple[ipaddress.IPv4Network, ipaddress.IPv4Address | None], ...]:
    """The routes of the router's table that leave by tunnel ``iface``
    (:meth:`~dmvpn.node.routing.RoutingTable.routes_out_of`): what the
    kernel must send into its TUN. Routes toward the underlay are the
    host's business, not the daemon's."""
    return tuple(RoutingTable.from_config(config).routes_out_of(iface))


def router_runtime(config: RouterConfig, spec: DaemonSpec, profile: str, stream: TextIO,
                   categories: Iterable[str] | None = None, *, force_nat_t: bool = False) -> RealRuntime:
    """A runtime driving a :class:`~dmvpn.node.router.Router` for ``config``
    with the operating system's randomness (``force_nat_t``: ESP in UDP 4500
    even without a NAT, see :class:`~dmvpn.ike.engine.Ikev1Engine`)."""
    from dmvpn.node.router import Router

    def build(clock: IosClock) -> Router:
        return Router(config, SystemRandomSource(), profile, clock=clock, kernel_host=True, force_nat_t=force_nat_t)

    def watch(engine: Engine) -> tuple[Watcher, ...]:
        assert isinstance(engine, Router)
        tunnels = {t.name: t.iface for t in spec.tuns if t.iface in engine.tunnels}
        if not tunnels:
            return ()
        try:
            return (KernelRouteWatcher(tunnels, engine.learn_routes),)
        except OSError as exc:
            raise RuntimeSetupError(f"cannot watch the kernel's routes (rtnetlink): {exc.strerror or exc}") from None

    return open_runtime(build, spec, stream, set(categories) if categories is not None else None, watch)
