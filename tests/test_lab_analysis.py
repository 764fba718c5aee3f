"""The ledger analysis on hand-made SA histories whose answers are known."""

from __future__ import annotations

from dmvpn.ipsec.analysis import analyse
from dmvpn.ipsec.ledger import SaRecord

KB = 1024


def _pair(node: str, peer: str, cid: int, spi_in: int, spi_out: int, at: float, *,
          initiator: bool, reason: str, deleted: float | None = None, pkts: int = 0,
          last: float | None = None, replaces: tuple[int, int] | None = None) -> list[SaRecord]:
    common = dict(node=node, peer=peer, initiator=initiator, reason=reason,
                  installed_at=at, deleted_at=deleted, bytes=pkts * 1400, packets=pkts,
                  first_packet=at if pkts else None, last_packet=last if pkts else None,
                  hard_seconds=3600.0, hard_bytes=4_608_000 * KB, transform="esp-aes esp-sha256-hmac")
    return [SaRecord(spi=spi_in, direction="inbound", conn_id=cid,
                     replaces_spi=replaces[0] if replaces else None, **common),
            SaRecord(spi=spi_out, direction="outbound", conn_id=cid + 1,
                     replaces_spi=replaces[1] if replaces else None, **common)]


def _both(cid: int, a: int, b: int, at: float, starter: str, reason: str, *,
          replaces: tuple[int, int] | None = None, **kw) -> list[SaRecord]:
    """One exchange seen by hub and spoke: hub inbound a = spoke outbound a;
    ``replaces`` is the hub's (inbound, outbound) SPIs of the pair it replaced."""
    hub = _pair("hub", "172.17.3.2", cid, a, b, at, initiator=starter == "hub",
                reason=reason if starter == "hub" else "peer's rekey", replaces=replaces, **kw)
    spoke = _pair("spoke", "172.17.3.1", cid + 1000, b, a, at, initiator=starter == "spoke",
                  reason=reason if starter == "spoke" else "peer's rekey",
                  replaces=(replaces[1], replaces[0]) if replaces else None, **kw)
    return hub + spoke


def test_seed_like_history() -> None:
    records = []
    records += _both(101, 0x1001, 0x2001, 0.0, "hub", "initial", deleted=64.0, pkts=10, last=40.0)
    records += _both(103, 0x1002, 0x2002, 40.0, "spoke", "volume rekey", deleted=104.0, pkts=10,
                     last=80.0, replaces=(0x1001, 0x2001))
    # a collision at 80 s: both start; the hub's pair carries traffic, the spoke's never does
    records += _both(105, 0x1003, 0x2003, 80.0, "hub", "volume rekey", deleted=144.0, pkts=10,
                     last=120.0, replaces=(0x1002, 0x2002))
    records += _both(107, 0x1004, 0x2004, 80.004, "spoke", "volume rekey", pkts=0,
                     replaces=(0x1002, 0x2002))
    records += _both(109, 0x1005, 0x2005, 120.0, "spoke", "volume rekey", pkts=10, last=200.0,
                     replaces=(0x1003, 0x2003))
    a = analyse(records, "hub", "172.17.3.2", end=200.0)
    assert len(a.exchanges) == 5
    assert [x.cause for x in a.exchanges] == ["initial"] + ["volume rekey"] * 4
    assert [x.initiator_node for x in a.exchanges] == ["hub", "spoke", "hub", "spoke", "spoke"]
    assert a.collisions == 1
    assert [x.inbound.spi for x in a.orphans] == [0x1004]
    assert len(a.rekeys("volume rekey")) == 4
    # the collision counts once: rekeys at 0, 40, 80, 120
    assert a.rekey_intervals() == [40.0, 40.0, 40.0]
    assert a.median_rekey_interval == 40.0
    # at 120 s: the 80 s pair, the orphan, the new one and the 40 s pair (deleted at 104) -> 3
    assert a.max_pairs_alive == 3 and a.max_inbound_alive == 3 and a.max_outbound_alive == 3
    # 60 s after the last rekey (180 s): the orphan and the current pair
    assert a.max_pairs_outside_rekeys == 2


def test_quiet_history_has_no_collision_or_orphan() -> None:
    records = _both(101, 0x1001, 0x2001, 0.0, "hub", "initial", pkts=5, last=3570.0)
    records += _both(103, 0x1002, 0x2002, 3570.0, "hub", "time rekey", pkts=5, last=3600.0,
                     replaces=(0x1001, 0x2001))
    a = analyse(records, "hub", "172.17.3.2", end=3600.0)
    assert a.collisions == 0 and a.orphans == []
    assert a.max_pairs_alive == 2 and a.max_pairs_outside_rekeys == 1
    assert [x.cause for x in a.exchanges] == ["initial", "time rekey"]
