"""A real-runtime daemon driving the ICMP echo engine, through the Python API
(the CLI's ``dmvpn run`` drives the Router only). Used by tests/test_real_*.py:

    echo_daemon.py --control PATH [--underlay IFACE=A.B.C.D/LEN]...
                   [--tun IFACE=NAME,KERNEL_ADDR/LEN,MTU,ENGINE_ADDR/LEN]...
                   [--tun-device PATH]

An underlay interface receives ICMP on a raw socket; a tunnel interface is a
TUN device whose kernel side has KERNEL_ADDR while the engine answers on
ENGINE_ADDR. Setup errors print one line and exit 1.
"""

from __future__ import annotations

import argparse
import ipaddress
import sys
from pathlib import Path

from dmvpn.node.icmp_echo import IcmpEchoEngine
from dmvpn.runtime.randomness import SystemRandomSource
from dmvpn.runtime.real.daemon import DaemonSpec, open_runtime
from dmvpn.runtime.real.errors import RuntimeSetupError
from dmvpn.runtime.real.tun import TUN_CLONE_DEVICE, TunSpec
from dmvpn.runtime.real.underlay import UnderlaySpec
from dmvpn.wire.ipv4 import IpProto


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--control", required=True)
    parser.add_argument("--underlay", action="append", default=[])
    parser.add_argument("--tun", action="append", default=[])
    parser.add_argument("--tun-device", default=TUN_CLONE_DEVICE)
    args = parser.parse_args()
    engine_ifaces: dict[str, str] = {}
    underlay = []
    for item in args.underlay:
        iface, addr = item.split("=", 1)
        engine_ifaces[iface] = addr
        underlay.append(UnderlaySpec(iface, ipaddress.IPv4Interface(addr).ip, udp_ports=(),
                                     raw_protocols=(int(IpProto.ICMP),)))
    tuns = []
    for item in args.tun:
        iface, rest = item.split("=", 1)
        name, kernel, mtu, engine_addr = rest.split(",")
        engine_ifaces[iface] = engine_addr
        tuns.append(TunSpec(iface, name, ipaddress.IPv4Interface(kernel), int(mtu)))
    spec = DaemonSpec(underlay, tuns, Path(args.control), args.tun_device)
    try:
        runtime = open_runtime(lambda clock: IcmpEchoEngine("echo", engine_ifaces, SystemRandomSource()),
                               spec, sys.stdout)
    except RuntimeSetupError as err:
        print(f"echo_daemon: {err}", file=sys.stderr)
        return 1
    runtime.printer.note(runtime.now(), "echo daemon running")
    runtime.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
