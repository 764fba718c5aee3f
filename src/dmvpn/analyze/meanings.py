"""What the debug lines that puzzle people mean, and the failures that
debug output shows with their usual causes.

Each entry: a pattern over the message (after timestamp and conn-id), a
short name, and the explanation. :func:`explain_lines` finds them in a log."""

from __future__ import annotations

import re
from dataclasses import dataclass

from dmvpn.analyze.debuglog import DebugLine


@dataclass(frozen=True, slots=True)
class Meaning:
    name: str
    pattern: re.Pattern[str]
    text: str
    failure: bool = False


def _m(name: str, pattern: str, text: str, failure: bool = False) -> Meaning:
    return Meaning(name, re.compile(pattern, re.IGNORECASE), text, failure)


PUZZLES: tuple[Meaning, ...] = (
    _m("paranoid keepalives", r"peer does not do paranoid keepalives",
       "harmless: printed while processing an Informational exchange (such as a DELETE) from a "
       "peer that does not run periodic DPD (`crypto isakmp keepalive ... periodic`, RFC 3706); "
       "nothing is wrong and nothing is torn down because of it."),
    _m("purging node", r"purging node \d+",
       "housekeeping: IOS forgets the record of a finished exchange (a Quick Mode or an "
       "Informational, by message ID) some seconds after it ended; no SA is removed."),
    _m("outstanding requests", r"SA has outstanding requests",
       "IPsec asked IKE for new SAs (a rekey, or the first packet of a flow) and the ISAKMP SA "
       "is up, so IKE starts a Quick Mode at once ('sitting IDLE. Starting QM immediately')."),
    _m("starting QM", r"sitting IDLE\. Starting QM immediately",
       "this router starts a Quick Mode now, as initiator, over its existing ISAKMP SA."),
    _m("set new node 0", r"set new node 0 to QM_IDLE",
       "a slot for a Quick Mode this router is about to start; its message ID is chosen in the "
       "next lines ('beginning Quick Mode exchange, M-ID of ...')."),
    _m("SPI starve", r"IKE_QM_SPI_STARVE",
       "a normal responder state: IKE waits for IPsec to allocate the inbound SPI; no shortage."),
    _m("QM done (await)", r'reason "QM done \(await\)"',
       "the responder's Quick Mode finished normally ('error FALSE': no error); the node is "
       "kept until it is purged."),
    _m("kilobyte life without duration", r"SA life type in kilobytes",
       "the proposal carries a volume lifetime. Its value, when logged, follows as 'SA life "
       "duration (VPI) of 0x0 0x46 0x50 0x0' (4,608,000 KB as bytes); without that line the "
       "kilobytes come from the config or profile show, or are assumed."),
    _m("install callback", r"Received IPSec Install callback",
       "IPsec installed the new SAs; the Quick Mode goes on to its last message."),
)

FAILURES: tuple[Meaning, ...] = (
    _m("proposal not chosen",
       r"proposal .*not chosen|NO_PROPOSAL_CHOSEN|atts not acceptable|"
       r"phase 2 SA policy not acceptable|IPSec policy invalidated proposal",
       "no transform set, mode or lifetime type both sides accept: compare `crypto ipsec "
       "transform-set` (cipher, hash, `mode transport|tunnel`) on both routers.", True),
    _m("PFS mismatch", r"PFS.*(?:mismatch|not (?:configured|acceptable))|group.*mismatch",
       "a responder with `set pfs groupN` in its profile rejects a Quick Mode that offers no PFS "
       "or another group (one without `set pfs` accepts what it is offered): set the same "
       "`set pfs` on both.", True),
    _m("replay check failed", r"replay check failed|PKT_REPLAY_ERR|anti-replay",
       "packets arrived behind the replay window (RFC 4303 section 3.4.3): QoS reordering or "
       "multi-core paths; raise `crypto ipsec security-association replay window-size`.", True),
    _m("invalid SPI", r"invalid spi|RECVD_PKT_INV_SPI|INVALID_SPI",
       "ESP for an SA this router no longer has (it rebooted, or deleted the SA and the peer did "
       "not get the DELETE): enable `crypto isakmp invalid-spi-recovery` and DPD "
       "(`crypto isakmp keepalive`).", True),
    _m("hash verification failed", r"hash (?:verification )?fail|HASH_FAIL|incorrect hash",
       "the peers derived different keys: in Main Mode almost always a pre-shared key mismatch "
       "(`crypto isakmp key`).", True),
    _m("retransmission exhaustion", r"Death by retransmission|retransmission count exceeded|"
       r"MM_NO_STATE.*retransmi|peer not responding",
       "the peer never answered: UDP 500/4500 or ESP blocked on the path, a wrong peer address, "
       "or the peer has no matching policy.", True),
    _m("retransmitting", r"retransmitting phase \d|retransmitting due to retransmit phase",
       "a message got no answer in time and is sent again; harmless once, a problem if it "
       "repeats until the exchange dies.", True),
)


@dataclass(slots=True)
class Found:
    """A meaning found in a log: where first, how often."""

    meaning: Meaning
    first_line: int
    source: str
    count: int = 1


def explain_lines(lines: list[DebugLine]) -> list[Found]:
    """The puzzling lines and failures in ``lines``, each once, in order."""
    found: dict[str, Found] = {}
    for d in lines:
        for meaning in (*FAILURES, *PUZZLES):
            if meaning.pattern.search(d.message):
                if meaning.name in found:
                    found[meaning.name].count += 1
                else:
                    found[meaning.name] = Found(meaning, d.no, d.source)
    return list(found.values())
