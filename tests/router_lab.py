"""Test-only helpers: the seed's hub and spoke as Router nodes in the sim."""

from __future__ import annotations

from dmvpn.config import parse_config
from dmvpn.node.router import Router
from dmvpn.runtime.sim import LinkParams, Simulator

SEED = "/work/shared/seed"
WAN = "GigabitEthernet0/0/2"
HUB_NBMA, SPOKE_NBMA = "172.17.3.1", "172.17.3.2"
HUB_TUN, SPOKE_TUN = "10.2.2.1", "10.2.2.2"


def seed_cfg(name: str) -> str:
    with open(f"{SEED}/{name}") as f:
        return f.read()


def hub_text(extra_profile: str = "", prefix: str = "") -> str:
    """The seed hub plus a static NHRP map for the spoke (the seed's hub learns it by NHRP)."""
    text = seed_cfg("hub.cfg").replace(" ip nhrp network-id 1\n",
                                       " ip nhrp network-id 1\n ip nhrp map 10.2.2.2 172.17.3.2\n")
    return prefix + text.replace(" set transform-set ipsec-transset-ENS\n",
                                 " set transform-set ipsec-transset-ENS\n" + extra_profile)


def spoke_text(extra_profile: str = "", prefix: str = "") -> str:
    text = seed_cfg("spoke.cfg")
    return prefix + text.replace(" set transform-set ipsec-transset-ENS\n",
                                 " set transform-set ipsec-transset-ENS\n" + extra_profile)


def build(seed: int = 1, link: LinkParams | None = None, profile: str = "cisco-iosxe",
          hub: str | None = None, spoke: str | None = None, debug: bool = False):
    sim = Simulator(seed=seed)
    routers = {}
    for name, text in (("HUB", hub or hub_text()), ("SPOKE1", spoke or spoke_text())):
        result = parse_config(text, name)
        assert not result.errors, [str(e) for e in result.errors]
        # nhrp=False: these tests count the packets of the seed before NHRP (no registration)
        r = Router(result.config, sim.random_for(name), profile, name=name, nhrp=False)
        routers[name] = r
        sim.add_node(r)
    wan = sim.connect("HUB", WAN, "SPOKE1", WAN, link or LinkParams(delay=0.002))
    if debug:
        for name in routers:
            sim.admin(name, "debug crypto isakmp")
    return sim, routers["HUB"], routers["SPOKE1"], wan


def results(router: Router) -> str:
    """The result string of the router's latest ping session (``!`` / ``.``)."""
    return "".join(router.host.last.results)
