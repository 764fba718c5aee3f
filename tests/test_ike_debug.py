"""``debug crypto isakmp`` output against the seed's IOS debugs: same lines in
the same order, timestamps, conn ids, message IDs, SPIs and addresses aside."""

from __future__ import annotations

import re
from datetime import datetime

from dmvpn.ike.debug import IosClock, render_line
from dmvpn.ipsec.sa import Selector
from dmvpn.sansio import LogEvent
from ike_harness import HUB, SPOKE, IkeNet, seed_text

SEED = "/work/shared/seed"


def normalize(line: str) -> str:
    line = re.sub(r"^\w{3} [ \d]\d \d\d:\d\d:\d\d: ", "", line)
    line = re.sub(r"\(\d+\):", "(N):", line)
    line = re.sub(r"0x[0-9A-F]+", "0xX", line)
    line = re.sub(r"\d+\.\d+\.\d+\.\d+", "A.B.C.D", line)
    return re.sub(r"\b\d{5,}\b", "M", line)


def seed_lines(name: str) -> list[str]:
    with open(f"{SEED}/{name}") as f:
        return [normalize(line.rstrip("\n")) for line in f if line.strip()]


def block(lines: list[str], first: str, last: str) -> list[str]:
    start = next(i for i, line in enumerate(lines) if first in line)
    end = next(i for i in range(start, len(lines)) if last in lines[i])
    return [line for line in lines[start:end + 1] if "purging node" not in line]


def hub_initiated_quick_mode() -> tuple[list[str], list[str]]:
    net = IkeNet(7)
    hub = net.add(HUB, seed_text("hub.cfg"))
    spoke = net.add(SPOKE, seed_text("spoke.cfg"))
    net.acquire(SPOKE, HUB)          # the spoke starts Main Mode: the hub is (R), as in the seed
    net.run(5.0)
    spoke.clear(net.now)
    net.run(10.0)
    net.events.clear()
    hub.acquire(net.now, hub.child_policies[0], SPOKE, HUB, Selector.hosts(HUB, SPOKE, 47))
    net.run(20.0)
    clock = IosClock()
    hub_lines = [normalize(render_line(e, clock)) for e in net.events if e.node == "HUB" and e.category == "isakmp"]
    spoke_lines = [normalize(render_line(e, clock)) for e in net.events
                   if e.node == "SPOKE1" and e.category == "isakmp"]
    return hub_lines, spoke_lines


def test_initiator_quick_mode_matches_seed_hub():
    hub_lines, _ = hub_initiated_quick_mode()
    expected = block(seed_lines("hub_debug_crypto_isakmp.txt"), "set new node 0 to QM_IDLE",
                     "New State = IKE_QM_PHASE2_COMPLETE")
    ours = block(hub_lines, "set new node 0 to QM_IDLE", "New State = IKE_QM_PHASE2_COMPLETE")
    assert ours == expected


def test_responder_quick_mode_matches_seed_spoke():
    _, spoke_lines = hub_initiated_quick_mode()
    expected = [line for line in seed_lines("spoke_debug_crypto_isakmp.txt") if "purging node" not in line]
    ours = block(spoke_lines, "received packet from", "New State = IKE_QM_PHASE2_COMPLETE")
    assert ours == expected


def test_responder_tail_and_delete_match_seed_hub():
    """The seed hub file starts inside a responder Quick Mode, then a DELETE."""
    seed = seed_lines("hub_debug_crypto_isakmp.txt")
    responder_tail = block(seed, "SA life type in kilobytes", "New State = IKE_QM_PHASE2_COMPLETE")
    _, spoke_lines = hub_initiated_quick_mode()
    ours = block(spoke_lines, "SA life type in kilobytes", "New State = IKE_QM_PHASE2_COMPLETE")
    assert [line.replace("(I)", "(R)") for line in ours] == responder_tail


def test_delete_processing_matches_seed_hub():
    seed = block(seed_lines("hub_debug_crypto_isakmp.txt"), "set new node M to QM_IDLE",
                 'reason "Informational (in) state 1"')
    net = IkeNet(9)
    net.add(HUB, seed_text("hub.cfg"))
    spoke = net.add(SPOKE, seed_text("spoke.cfg"))
    net.acquire(SPOKE, HUB)
    net.run(5.0)
    net.events.clear()
    spoke.clear(net.now)
    net.run(10.0)
    ours = block([normalize(render_line(e)) for e in net.events if e.node == "HUB" and e.category == "isakmp"],
                 "set new node M to QM_IDLE", 'reason "Informational (in) state 1"')
    assert ours == seed


def test_timestamp_format_is_ios():
    clock = IosClock(datetime(2021, 9, 7, 23, 11, 0))
    ev = LogEvent(13.4, "HUB", "isakmp", "(79859):QM Responder gets spi", {"facility": "ISAKMP"})
    assert render_line(ev, clock) == "Sep  7 23:11:13: ISAKMP: (79859):QM Responder gets spi"
