"""Test-only helpers: IKEv1 engines joined by an in-memory network with delay and
loss, driven in virtual time (no sleeps). Used by tests/test_ike_*.py to
test the IKE engine without the router or the simulator."""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, replace

from dmvpn.config import parse_config
from dmvpn.ike.engine import Ikev1Engine
from dmvpn.ike.manager import Datagram
from dmvpn.ike.profiles import get_profile
from dmvpn.ipsec.sa import Selector
from dmvpn.ipsec.sad import SecurityAssociationDatabase
from dmvpn.node.policies import child_policies
from dmvpn.runtime.randomness import SeededRandomSource

SEED_DIR = "/work/shared/seed"


def seed_text(name: str) -> str:
    with open(f"{SEED_DIR}/{name}") as f:
        return f.read()


def config(text: str):
    result = parse_config(text, "<test>")
    assert not result.errors, [str(e) for e in result.errors]
    return result.config


@dataclass
class Wire:
    delay: float = 0.005
    loss: float = 0.0


class IkeNet:
    """Engines by address; datagrams travel with ``wire`` delay and loss."""

    def __init__(self, seed: int = 1, wire: Wire | None = None) -> None:
        self.now = 0.0
        self.engines: dict[str, Ikev1Engine] = {}
        self.wire = wire or Wire()
        self.rng = random.Random(seed)
        self.seed = seed
        self.queue: list[tuple[float, int, Datagram]] = []
        self.seq = 0
        self.sent: list[tuple[float, Datagram]] = []
        self.events = []
        self.down: set[str] = set()
        self.traffic: dict[tuple[str, str], tuple[float | None, float | None]] = {}
        self.lost = self.delivered = self.no_sa = self.pairs_max = 0

    def add(self, address: str, cfg_text: str, profile: str = "cisco-iosxe", debug: bool = True) -> Ikev1Engine:
        cfg = config(cfg_text)
        rnd = SeededRandomSource(self.seed, address)
        sad = SecurityAssociationDatabase(rnd)
        engine = Ikev1Engine(cfg.hostname, cfg, sad, rnd, get_profile(profile), child_policies(cfg),
                             traffic=lambda peer, a=address: self.traffic.get((a, peer), (None, None)))
        engine.debug = debug
        self.engines[address] = engine
        return engine

    def acquire(self, src: str, dst: str) -> None:
        e = self.engines[src]
        e.acquire(self.now, e.child_policies[0], dst, src, Selector.hosts(src, dst, 47))
        self.pump()

    def set_nat(self, inside: str, public: str) -> None:
        """Source NAT for ``inside``: it appears as ``public`` with ports +40000."""
        self.nat = (inside, public)

    def _translate(self, d: Datagram) -> Datagram:
        nat = getattr(self, "nat", None)
        if nat is None:
            return d
        inside, public = nat
        if d.src == inside:
            return replace(d, src=public, sport=d.sport + 40000)
        if d.dst == public:
            return replace(d, dst=inside, dport=d.dport - 40000)
        return d

    def pump(self) -> None:
        for _addr, e in self.engines.items():
            for d in map(self._translate, e.poll_datagrams()):
                self.sent.append((self.now, d))
                if d.src in self.down or d.dst in self.down or self.rng.random() < self.wire.loss:
                    continue
                self.seq += 1
                heapq.heappush(self.queue, (self.now + self.wire.delay, self.seq, d))
            self.events.extend(e.poll_events())

    def probe(self) -> None:
        """One small packet each way on the current outbound SAs; a packet
        whose SPI the receiver lacks is counted in ``lost``."""
        for a, e in self.engines.items():
            for b, other in self.engines.items():
                if a == b or a in self.down:
                    continue
                sa = e.sad.outbound_for(b)
                if sa is None:
                    self.no_sa += 1
                    continue
                e.sad.credit(self.now, sa, 100, 1)
                self.traffic[(a, b)] = (self.traffic.get((a, b), (None, None))[0], self.now)
                if b in self.down:
                    continue
                inbound = other.sad.lookup_inbound(sa.spi)
                if inbound is None:
                    self.lost += 1
                else:
                    other.sad.credit(self.now, inbound, 100, 1)
                    self.traffic[(b, a)] = (self.now, self.traffic.get((b, a), (None, None))[1])
                self.delivered += 1
        for e in self.engines.values():
            e.sad_events(self.now)

    def run(self, until: float, probe_every: float | None = None) -> None:
        if probe_every is not None:
            t = self.now
            while t < until:
                t = min(until, t + probe_every)
                self.run(t)
                self.probe()
                self.pairs_max = max(self.pairs_max, *(len(e.children) for e in self.engines.values()))
            return
        while True:
            self.pump()
            t_net = self.queue[0][0] if self.queue else None
            deadlines = [(d, a) for a, e in self.engines.items() if (d := e.next_deadline()) is not None]
            t_eng = min(deadlines)[0] if deadlines else None
            cands = [t for t in (t_net, t_eng) if t is not None]
            if not cands or min(cands) > until:
                self.now = until
                return
            t = min(cands)
            self.now = max(self.now, t)
            if t_net is not None and t_net <= t:
                _, _, d = heapq.heappop(self.queue)
                target = self.engines.get(d.dst)
                if target is not None and d.dst not in self.down and not d.raw:  # the router eats NAT keepalives
                    target.receive(self.now, d.src, d.sport, d.dst, d.dport, d.payload)
            else:
                for dl, a in deadlines:
                    if dl <= self.now:
                        self.engines[a].handle_timer(self.now)


HUB, SPOKE = "172.17.3.1", "172.17.3.2"
