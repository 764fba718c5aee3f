"""IKEv1 Main Mode, Quick Mode and Informational between two engines, in
virtual time over an in-memory network (tests/ike_harness.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dmvpn.ike.profiles import UnknownProfile, get_profile
from dmvpn.ike.states import IkeEvent, IllegalTransition, MessageSource, QuickModeState, next_quick_mode
from dmvpn.ipsec.esp import protect, unprotect
from dmvpn.ipsec.sa import SaDirection
from dmvpn.wire.ipv4 import IPv4Header
from ike_harness import HUB, SPOKE, IkeNet, Wire, seed_text

HUB_CFG = seed_text("hub.cfg")
SPOKE_CFG = seed_text("spoke.cfg")


def pair(seed: int = 1, wire: Wire | None = None, hub_cfg: str = HUB_CFG, spoke_cfg: str = SPOKE_CFG,
         profile: str = "cisco-iosxe") -> IkeNet:
    net = IkeNet(seed, wire)
    net.add(HUB, hub_cfg, profile)
    net.add(SPOKE, spoke_cfg, profile)
    return net


def esp_roundtrip(sender, receiver, src: str, dst: str) -> bytes:
    """Protect a GRE datagram with the sender's outbound SA, open it with the receiver's SAD."""
    sa = sender.sad.outbound_for(dst)
    assert sa is not None
    datagram = IPv4Header(src, dst, 47, ttl=255).encode(b"\x20\x00\x08\x00\x00\x00\x00\x01payload")
    _sa_in, inner = unprotect(receiver.sad, 1.0, protect(sa, 1.0, datagram))
    return inner


def test_seed_configs_make_isakmp_sa_and_transport_pair():
    net = pair()
    net.acquire(SPOKE, HUB)
    net.run(5.0)
    hub, spoke = net.engines[HUB], net.engines[SPOKE]
    assert [s.established for s in hub.sas] == [True] and [s.established for s in spoke.sas] == [True]
    choice = hub.sas[0].choice
    assert (choice.encryption, choice.key_bits, choice.hash, choice.group, choice.lifetime) == (7, 128, 2, 15, 3600)
    hub_sas, spoke_sas = hub.sad.all(), spoke.sad.all()
    assert len(hub_sas) == len(spoke_sas) == 2
    hub_in = next(s for s in hub_sas if s.direction is SaDirection.INBOUND)
    spoke_out = next(s for s in spoke_sas if s.direction is SaDirection.OUTBOUND)
    assert hub_in.spi == spoke_out.spi and hub_in.spi >= 256
    assert hub_in.mode.value == 2 and hub_in.transform.ios_name == "esp-aes esp-sha256-hmac"
    assert hub_in.selector.protocol == 47
    assert hub_in.lifetime.hard_seconds == 3600 and hub_in.lifetime.hard_bytes == 4_608_000 * 1024
    # Keys agree both ways: ESP built by one side opens on the other.
    assert esp_roundtrip(spoke, hub, SPOKE, HUB).endswith(b"payload")
    assert esp_roundtrip(hub, spoke, HUB, SPOKE).endswith(b"payload")


def test_same_seed_same_bytes_other_seed_different():
    def wire_bytes(seed):
        net = pair(seed)
        net.acquire(SPOKE, HUB)
        net.run(5.0)
        return [d.payload for _, d in net.sent]
    assert wire_bytes(3) == wire_bytes(3)
    assert wire_bytes(3) != wire_bytes(4)


def test_converges_with_20_percent_loss():
    for seed in range(1, 9):
        net = pair(seed, Wire(delay=0.01, loss=0.2))
        net.acquire(SPOKE, HUB)
        net.run(300.0)
        hub, spoke = net.engines[HUB], net.engines[SPOKE]
        assert len(hub.children) == 1 and len(spoke.children) == 1, seed
        assert esp_roundtrip(spoke, hub, SPOKE, HUB).endswith(b"payload")
        assert esp_roundtrip(hub, spoke, HUB, SPOKE).endswith(b"payload")


def test_wrong_psk_no_sa_clear_logs_and_retries_stop():
    net = pair(spoke_cfg=SPOKE_CFG.replace("seed-lab-psk", "wrong-key"))
    net.acquire(SPOKE, HUB)
    net.run(1000.0)
    hub, spoke = net.engines[HUB], net.engines[SPOKE]
    assert not hub.sad.all() and not spoke.sad.all()
    assert not any(s.established for s in hub.sas + spoke.sas)
    hub_lines = [e.message for e in net.events if e.node == "HUB"]
    spoke_lines = [e.message for e in net.events if e.node == "SPOKE1"]
    assert any("failed its sanity check" in m for m in hub_lines)
    assert any("pre-shared key mismatch?" in m for m in hub_lines)
    assert any("Death by retransmission P1" in m and "Processing of Main mode failed" in m for m in spoke_lines)
    sent_by_spoke = [d for _, d in net.sent if d.src == SPOKE]
    # MM1, MM3, then MM5 sent once and retransmitted retransmit_limit times; then nothing.
    limit = get_profile("cisco-iosxe").retransmit_limit
    assert len(sent_by_spoke) == 2 + 1 + limit
    last = max(t for t, d in net.sent)
    assert last < 200.0


def test_phase1_group_mismatch_no_proposal_chosen():
    net = pair(spoke_cfg=SPOKE_CFG.replace("group 15", "group 14"))
    net.acquire(SPOKE, HUB)
    net.run(100.0)
    hub_msgs = [e.message for e in net.events if e.node == "HUB"]
    spoke_msgs = [e.message for e in net.events if e.node == "SPOKE1"]
    assert any("Diffie-Hellman group offered does not match policy!" in m for m in hub_msgs)
    assert any("phase 1 SA policy not acceptable!" in m for m in hub_msgs)
    assert any("NO_PROPOSAL_CHOSEN" in m and "Processing of Main mode failed" in m for m in spoke_msgs)
    assert not net.engines[HUB].sas and not net.engines[SPOKE].sas
    assert len([d for _, d in net.sent if d.src == SPOKE]) == 1  # the notify stopped the retransmissions


def test_phase1_lifetime_rule_initiator_shorter_accepted_longer_refused():
    shorter = pair(spoke_cfg=SPOKE_CFG.replace(" lifetime 3600", " lifetime 1800"))
    shorter.acquire(SPOKE, HUB)
    shorter.run(5.0)
    assert shorter.engines[HUB].sas[0].choice.lifetime == 1800
    longer = pair(spoke_cfg=SPOKE_CFG.replace(" lifetime 3600", " lifetime 7200"))
    longer.acquire(SPOKE, HUB)
    longer.run(5.0)
    assert not longer.engines[HUB].sas
    assert any("Lifetime offered is longer than policy!" in e.message for e in longer.events)


def test_transform_set_mismatch_quick_mode_no_proposal_chosen():
    net = pair(spoke_cfg=SPOKE_CFG.replace("esp-aes esp-sha256-hmac", "esp-aes 256 esp-sha-hmac"))
    net.acquire(SPOKE, HUB)
    net.run(100.0)
    hub, spoke = net.engines[HUB], net.engines[SPOKE]
    assert hub.sas[0].established and spoke.sas[0].established
    assert not hub.sad.all() and not spoke.sad.all()
    hub_msgs = [e.message for e in net.events if e.node == "HUB"]
    spoke_msgs = [e.message for e in net.events if e.node == "SPOKE1"]
    assert any("phase 2 SA policy not acceptable!" in m for m in hub_msgs)
    assert any("Processing of Quick mode failed" in m and "NO_PROPOSAL_CHOSEN" in m for m in hub_msgs)
    assert any("answered NO_PROPOSAL_CHOSEN" in m for m in spoke_msgs)


def test_pfs_and_responder_lifetime():
    hub_cfg = HUB_CFG.replace(" set transform-set ipsec-transset-ENS",
                              " set transform-set ipsec-transset-ENS\n set pfs group14\n"
                              " set security-association lifetime seconds 1200")
    spoke_cfg = SPOKE_CFG.replace(" set transform-set ipsec-transset-ENS",
                                  " set transform-set ipsec-transset-ENS\n set pfs group14")
    net = pair(hub_cfg=hub_cfg, spoke_cfg=spoke_cfg)
    net.acquire(SPOKE, HUB)
    net.run(5.0)
    hub, spoke = net.engines[HUB], net.engines[SPOKE]
    assert spoke.children and hub.children
    # The responder's shorter lifetime wins on both sides (RESPONDER-LIFETIME).
    assert spoke.children[0].sa_out.lifetime.hard_seconds == 1200
    assert hub.children[0].sa_in.lifetime.hard_seconds == 1200
    assert any("RESPONDER_LIFETIME" in e.message for e in net.events if e.node == "SPOKE1")
    assert any("processing KE payload. message ID = " in e.message and "(0)" not in e.message
               for e in net.events if e.node == "HUB")
    assert esp_roundtrip(spoke, hub, SPOKE, HUB).endswith(b"payload")


def test_pfs_required_but_not_offered_is_refused():
    hub_cfg = HUB_CFG.replace(" set transform-set ipsec-transset-ENS",
                              " set transform-set ipsec-transset-ENS\n set pfs group14")
    net = pair(hub_cfg=hub_cfg)
    net.acquire(SPOKE, HUB)
    net.run(50.0)
    assert not net.engines[HUB].sad.all()


def test_delete_removes_pair_on_both_sides():
    net = pair()
    net.acquire(SPOKE, HUB)
    net.run(5.0)
    spoke = net.engines[SPOKE]
    assert spoke.clear(net.now) == 1
    net.run(10.0)
    assert not net.engines[HUB].sad.all() and not spoke.sad.all()
    msgs = [e.message for e in net.events if e.node == "HUB"]
    assert any("processing DELETE payload" in m for m in msgs)
    assert any(re.search(r"Enqueued KEY_MGR_DELETE_SAS for IPSEC SA \(SPI:0x[0-9A-F]+\)", m) for m in msgs)


def test_duplicate_quick_mode_message_is_answered_not_reprocessed():
    net = pair()
    net.acquire(SPOKE, HUB)
    net.run(5.0)
    hub = net.engines[HUB]
    qm1 = next(d for _, d in net.sent if d.src == SPOKE and d.payload[18] == 32)
    before = len(hub.sad.all())
    hub.receive(net.now, qm1.src, qm1.sport, qm1.dst, qm1.dport, qm1.payload)
    net.pump()
    assert len(hub.sad.all()) == before
    assert any("phase 2 packet is a duplicate" in e.message for e in net.events)


def test_illegal_transition_is_a_named_error():
    with pytest.raises(IllegalTransition) as err:
        next_quick_mode(QuickModeState.IKE_QM_READY, MessageSource.IKE_MESG_FROM_IPSEC,
                        IkeEvent.IPSEC_INSTALL_DONE, responder=False)
    assert "IKE_QM_READY" in str(err.value)


def test_unknown_profile_is_a_clear_error():
    with pytest.raises(UnknownProfile, match="cisco-iosxe, improved"):
        get_profile("juniper")


def test_garbage_udp_500_is_logged_not_raised():
    net = pair()
    net.engines[HUB].receive(0.0, SPOKE, 500, HUB, 500, b"\x01\x02garbage")
    net.pump()
    assert any("failed its sanity check" in e.message for e in net.events)


def test_crypto_map_tunnel_mode_with_subnet_ids():
    from ipaddress import IPv4Network

    from dmvpn.ipsec.sa import Selector
    from dmvpn.wire.ipv4 import IPv4Header
    net = IkeNet(11)
    a = net.add("192.0.2.1", Path("tests/data/ike/site_a.cfg").read_text())
    b = net.add("192.0.2.2", Path("tests/data/ike/site_b.cfg").read_text())
    policy = a.child_policies[0]
    a.acquire(0.0, policy, "192.0.2.2", "192.0.2.1",
              Selector(IPv4Network("10.1.0.0/24"), IPv4Network("10.2.0.0/24"), 0))
    net.run(5.0)
    assert a.sas[0].choice.group == 14 and a.sas[0].choice.key_bits == 256
    sa_a = a.sad.outbound_for("192.0.2.2")
    assert sa_a.mode.value == 1 and sa_a.transform.ios_name == "esp-256-aes esp-sha256-hmac"
    assert b.children[0].selector == Selector(IPv4Network("10.2.0.0/24"), IPv4Network("10.1.0.0/24"), 0)
    inner = IPv4Header("10.1.0.5", "10.2.0.7", 1).encode(b"\x08\x00\xf7\xff\x00\x00\x00\x00")
    _sa, opened = unprotect(b.sad, 1.0, protect(sa_a, 1.0, inner))
    assert opened == inner


def test_crypto_map_mismatched_acl_is_refused():
    net = IkeNet(12)
    a = net.add("192.0.2.1", Path("tests/data/ike/site_a.cfg").read_text())
    site_b = Path("tests/data/ike/site_b.cfg").read_text()
    net.add("192.0.2.2", site_b.replace("10.1.0.0 0.0.0.255", "10.9.0.0 0.0.0.255"))
    from ipaddress import IPv4Network

    from dmvpn.ipsec.sa import Selector
    a.acquire(0.0, a.child_policies[0], "192.0.2.2", "192.0.2.1",
              Selector(IPv4Network("10.1.0.0/24"), IPv4Network("10.2.0.0/24"), 0))
    net.run(30.0)
    assert not a.sad.all()
    assert any("phase 2 SA policy not acceptable" in e.message for e in net.events)


def test_half_open_main_modes_are_capped():
    from dmvpn.ike.proposals import phase1_sa_payload
    from dmvpn.wire.isakmp import IsakmpMessage
    net = pair()
    hub = net.engines[HUB]
    cap = hub.profile.max_half_open
    for i in range(cap + 10):
        msg = IsakmpMessage(bytes([1, 2, 3, 4]) + i.to_bytes(4, "big"), bytes(8), 2,
                            payloads=[phase1_sa_payload(hub.config.isakmp_policies)])
        hub.receive(0.0, f"198.51.{i // 200}.{i % 200 + 1}", 500, HUB, 500, msg.encode())
    assert len(hub.sas) == cap
    assert any(e.fields.get("facility") == "%CRYPTO-4-IKE_HALF_OPEN_LIMIT" for e in hub.poll_events())
    hub.handle_timer(1000.0)  # half-open SAs time out
    assert not hub.sas


def test_nat_detected_floats_to_4500_and_encapsulates_esp_in_udp():
    from dmvpn.wire.ipv4 import decode_ipv4
    from dmvpn.wire.udp import decode_udp
    net = pair(seed=13)
    net.set_nat(SPOKE, "203.0.113.9")           # the spoke sits behind a NAT
    net.acquire(SPOKE, HUB)
    net.run(5.0)
    hub, spoke = net.engines[HUB], net.engines[SPOKE]
    assert hub.sas[0].nat_detected and spoke.sas[0].nat_detected
    assert (spoke.sas[0].local_port, spoke.sas[0].peer_port) == (4500, 4500)
    assert (hub.sas[0].local_port, hub.sas[0].peer_port) == (4500, 44500)   # the NAT's port for 4500
    hub_ports = [d.dport if d.dst == HUB else d.sport for _, d in net.sent]
    assert hub_ports[:4] == [500] * 4 and set(hub_ports[4:]) == {4500}   # MM5 on floats to 4500
    qm1 = next(d for _, d in net.sent if len(d.payload) > 18 and d.payload[18] == 32)
    assert qm1.dport == 4500
    sa = hub.sad.outbound_for("203.0.113.9")
    assert sa is not None and sa.udp_encap == (4500, 44500) and sa.mode.value == 2
    assert spoke.sad.outbound_for(HUB).udp_encap == (4500, 4500)
    datagram = IPv4Header(HUB, "203.0.113.9", 47, ttl=255).encode(b"\x20\x00\x08\x00\x00\x00\x00\x01gre")
    wire = protect(sa, 1.0, datagram)
    header, body = decode_ipv4(wire)
    assert header.protocol == 17 and decode_udp(body).dst_port == 44500   # ESP in UDP (RFC 3948)
    _sa, inner = unprotect(spoke.sad, 1.0, wire)
    assert inner.endswith(b"gre")
    assert any("encaps is 4 (Transport-UDP)" in e.message for e in net.events)


def test_nat_keepalives_when_idle():
    net = IkeNet(14)
    net.add(HUB, HUB_CFG)
    net.add(SPOKE, "crypto isakmp nat keepalive 20\n" + SPOKE_CFG)
    net.set_nat(SPOKE, "203.0.113.9")
    net.acquire(SPOKE, HUB)
    net.run(100.0)
    keepalives = [t for t, d in net.sent if d.payload == b"\xff"]
    assert len(keepalives) == 4 and all(d.raw for _, d in net.sent if d.payload == b"\xff")
    assert keepalives[1] - keepalives[0] == 20.0
