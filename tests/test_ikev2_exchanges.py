"""IKE_SA_INIT and IKE_AUTH tasks driven initiator <-> responder in memory
(bytes in, bytes out, explicit now, seeded randomness): both sides derive
the same IKE and CHILD_SA keys; INVALID_KE_PAYLOAD and COOKIE retries;
wrong keys and proposals fail with the RFC's notifies; tshark decodes and
decrypts the exchange with the key line we export."""

from __future__ import annotations

import io
import os
import random
import shutil
import subprocess
from ipaddress import IPv4Address
from pathlib import Path

from dmvpn.config.ikev2_model import DEFAULT_PROPOSAL, Ikev2Encryption, Ikev2Proposal
from dmvpn.crypto.dh_groups import DhGroup
from dmvpn.crypto.esp_algorithms import EspAuthAlgorithm, EspTransform, EspTransformId
from dmvpn.crypto.ikev2_algorithms import EncrId, IntegId, PrfId
from dmvpn.ike.v2.ike_auth import AuthConfig, IkeAuth
from dmvpn.ike.v2.keytable import key_record
from dmvpn.ike.v2.sa_init import Endpoints, IkeSaInit, InitOutcome
from dmvpn.runtime.sim.pcap import PcapWriter
from dmvpn.wire.ikev2 import decode_message
from dmvpn.wire.ikev2_payloads import NotifyPayload
from dmvpn.wire.ikev2_registry import NotifyType
from dmvpn.wire.ipv4 import IPv4Header
from dmvpn.wire.udp import encode_udp


class SeededRandom:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def token_bytes(self, n: int) -> bytes:
        return self.rng.randbytes(n)

    def uniform(self, a: float, b: float) -> float:
        return self.rng.uniform(a, b)


CBC = Ikev2Proposal("CBC", (Ikev2Encryption(EncrId.AES_CBC, 256, "aes-cbc-256"),), (IntegId.HMAC_SHA2_256_128,),
                    (PrfId.HMAC_SHA2_256,), (DhGroup.ECP_256,), 2)
GCM = Ikev2Proposal("GCM", (Ikev2Encryption(EncrId.AES_GCM_16, 128, "aes-gcm-128"),), (), (PrfId.HMAC_SHA2_384,),
                    (DhGroup.MODP_2048,), 3)
ESP = [EspTransform(EspTransformId.ESP_AES_CBC, 256, EspAuthAlgorithm.HMAC_SHA2_256)]
SPOKE, HUB = IPv4Address("192.0.2.2"), IPv4Address("192.0.2.1")


def _auth_configs(spoke_psk: bytes = b"k1", hub_remote: bytes = b"k1") -> tuple[AuthConfig, AuthConfig]:
    spoke = AuthConfig(SPOKE, HUB, local_psk=spoke_psk, remote_psk=b"k2", esp=ESP)
    hub = AuthConfig(HUB, SPOKE, local_psk=b"k2", remote_psk=hub_remote, esp=ESP)
    return spoke, hub


def _init(i_props, r_props, seed: int = 1, cookie: bytes | None = None, i_ep=None, r_ep=None):
    i = IkeSaInit(i_props, SeededRandom(seed), initiator=True, endpoints=i_ep)
    r_rng = SeededRandom(seed + 100)
    wire: list[bytes] = []
    for _ in range(4):
        req = i.build_i(0.0)
        # the responder keeps no state until it answers with keys
        r = IkeSaInit(r_props, r_rng, initiator=False, cookie_secret=cookie, endpoints=r_ep)
        r.process_r(req, 0.0, peer=SPOKE.packed)
        resp = r.build_r(0.0)
        wire += [req, resp]
        outcome = i.process_i(resp, 0.0)
        if outcome is not InitOutcome.RETRY:
            return i, r, outcome, wire
    raise AssertionError("no end to retries")


def _full(i_props=(CBC,), r_props=(DEFAULT_PROPOSAL, CBC), **kw):
    i, r, outcome, wire = _init(list(i_props), list(r_props))
    assert outcome is InitOutcome.DONE, i.sa.error
    spoke_cfg, hub_cfg = _auth_configs(**kw)
    ia, ra = IkeAuth(i.sa, spoke_cfg, SeededRandom(7)), IkeAuth(r.sa, hub_cfg, SeededRandom(8))
    req = ia.build_i(1.0)
    ra.process_r(req, 1.0)
    resp = ra.build_r(1.0)
    assert resp is not None
    ok = ia.process_i(resp, 1.0)
    return i, r, ia, ra, ok, [*wire, req, resp]


def test_sa_init_and_auth_agree_on_every_key() -> None:
    i, r, ia, ra, ok, _ = _full()
    assert ok, ia.error
    assert i.sa.keys == r.sa.keys and i.sa.keys is not None
    assert (i.sa.spi_i, i.sa.spi_r) == (r.sa.spi_i, r.sa.spi_r) and i.sa.spi_r != bytes(8)
    assert i.sa.algorithms == r.sa.algorithms and i.sa.algorithms is not None
    assert i.sa.algorithms.cipher.encr == EncrId.AES_CBC and i.sa.algorithms.group == DhGroup.ECP_256
    assert ia.child is not None and ra.child is not None
    assert ia.child.keys == ra.child.keys and ia.child.esp == ra.child.esp == ESP[0]
    assert (ia.child.spi_i, ia.child.spi_r) == (ra.child.spi_i, ra.child.spi_r)
    assert ia.child.spi_i != ia.child.spi_r and ia.child.transport


def test_gcm_ike_sa() -> None:
    i, r, ia, _ra, ok, _ = _full(i_props=(GCM,), r_props=(GCM,))
    assert ok, ia.error
    assert i.sa.algorithms is not None and i.sa.algorithms.cipher.is_aead and i.sa.keys == r.sa.keys


def test_invalid_ke_retry_with_the_group_the_responder_wants() -> None:
    two_groups = Ikev2Proposal("TWO", CBC.encryption, CBC.integrity, CBC.prf, (DhGroup.MODP_2048, DhGroup.ECP_256), 1)
    only_19 = Ikev2Proposal("ONLY19", CBC.encryption, CBC.integrity, CBC.prf, (DhGroup.ECP_256,), 1)
    i, r, outcome, wire = _init([two_groups], [only_19])
    assert outcome is InitOutcome.DONE, i.sa.error
    assert len(wire) == 4 and "INVALID_KE_PAYLOAD: retrying with group 19" in i.sa.notes
    (note,) = decode_message(wire[1]).payloads
    assert isinstance(note, NotifyPayload) and note.notify_type == NotifyType.INVALID_KE_PAYLOAD
    assert note.data == b"\x00\x13" and i.sa.keys == r.sa.keys


def test_cookie_round_trip() -> None:
    i, r, outcome, wire = _init([CBC], [CBC], cookie=b"secret")
    assert outcome is InitOutcome.DONE and len(wire) == 4 and "cookie requested" in i.sa.notes
    retry = decode_message(wire[2])
    assert isinstance(retry.payloads[0], NotifyPayload) and retry.payloads[0].notify_type == NotifyType.COOKIE
    assert i.sa.keys == r.sa.keys


def test_no_proposal_chosen() -> None:
    i, _r, outcome, _ = _init([GCM], [CBC])
    assert outcome is InitOutcome.FAILED and i.sa.error == "peer answered NO_PROPOSAL_CHOSEN"


def test_wrong_psk_is_authentication_failed() -> None:
    _i, _r, ia, ra, ok, _ = _full(hub_remote=b"not-the-key")
    assert not ok and ia.error == "peer answered AUTHENTICATION_FAILED"
    assert ra.error == "the initiator's AUTH does not verify" and ra.child is None and ia.child is None


def test_deterministic_with_the_same_seed() -> None:
    assert _full()[5] == _full()[5]


def test_tshark_decodes_and_decrypts_our_exchange(tmp_path: Path) -> None:
    i, _r, _ia, _ra, ok, wire = _full()
    assert ok and i.sa.keys is not None and i.sa.algorithms is not None
    line = key_record(i.sa.spi_i, i.sa.spi_r, i.sa.algorithms.cipher, i.sa.keys).line()
    buf = io.BytesIO()
    w = PcapWriter(buf)
    for n, m in enumerate(wire):
        src, dst = (SPOKE, HUB) if n % 2 == 0 else (HUB, SPOKE)
        w.record(float(n), b"\x02" * 6, b"\x04" * 6,
                 IPv4Header(str(src), str(dst), 17).encode(encode_udp(str(src), str(dst), 500, 500, m)))
    cap = tmp_path / "exchange.pcap"
    cap.write_bytes(buf.getvalue())
    tshark = shutil.which("tshark")
    assert tshark, "tshark is required for this test"
    out = subprocess.run(
        [tshark, "-r", str(cap), "-o", f"uat:ikev2_decryption_table:{line}", "-T", "fields",
         "-e", "isakmp.exchangetype", "-e", "isakmp.auth.data", "-e", "_ws.expert.message"],
        capture_output=True, text=True, env=dict(os.environ, HOME=str(tmp_path)), check=True).stdout
    rows = [x.split("\t") for x in out.splitlines()]
    assert [r[0] for r in rows] == ["34", "34", "35", "35"]
    assert all(r[1] for r in rows[2:]) and not any(r[2] for r in rows), out


def test_show_views_of_our_sas_parse_in_genieparser() -> None:
    from dmvpn.ike.v2.views import child_view, sa_view
    from dmvpn.show import ikev2_sa
    from dmvpn.show.ikev2_views import Ikev2SessionView
    from test_show_support import genie_parse, normalise

    i, r, ia, ra, ok, _ = _full()
    assert ok and ia.child is not None and ra.child is not None
    hub = sa_view(r.sa, 1, (HUB, 500), (SPOKE, 500), now=736.0, lifetime=86400, local_id=str(HUB), remote_id=str(SPOKE))
    spoke = sa_view(i.sa, 1, (SPOKE, 500), (HUB, 500), now=736.0, lifetime=86400)
    assert (hub.encryption, hub.keysize, hub.prf, hub.hash, hub.dh_group) == ("AES-CBC", 256, "SHA256", "SHA256", 19)
    assert hub.local_spi == spoke.remote_spi == r.sa.spi_r and not hub.initiator and spoke.initiator
    assert hub.active_time == 735
    parsed = genie_parse("iosxe", "show crypto ikev2 sa", ikev2_sa.render_sa_text([hub]))
    assert parsed == normalise(ikev2_sa.render_sa_json([hub]))
    assert parsed["ipv4"]["1"]["remote_ip"] == str(SPOKE)
    detail = genie_parse("iosxe", "show crypto ikev2 sa detail", ikev2_sa.render_sa_text([hub], detail=True))
    assert detail["tunnel_id"]["1"]["local_spi"] == r.sa.spi_r.hex().upper()
    session = Ikev2SessionView(1, hub, [child_view(ra.child, False, HUB, SPOKE)])
    got = genie_parse("iosxe", "show crypto ikev2 session", ikev2_sa.render_session_text([session]))
    assert got == normalise(ikev2_sa.render_session_json([session]))
    child = got["ikev2_session"]["IPv4"]["1"]["child_sa"]["1"]
    assert child["esp_spi_in"] == f"0x{int.from_bytes(ra.child.spi_r, 'big'):X}"


def test_nat_detection_hashes_match_strongswan_captures() -> None:
    """Our NAT_DETECTION_* data for the addresses of each Wireshark decrypt
    capture's IKE_SA_INIT request and response equals what was sent."""
    from dmvpn.crypto.ikev2_kdf import nat_detection_hash
    from dmvpn.wire.pcap_reader import read_frames, udp_datagram

    pcaps = Path(__file__).resolve().parents[2] / "shared" / "oracles" / "pcaps" / "wireshark"
    checked = 0
    for cap in sorted(pcaps.glob("ikev2-decrypt-*")):
        for frame in list(read_frames(cap))[:2]:
            d = udp_datagram(frame)
            assert d is not None
            m = decode_message(d.payload)
            got = {int(p.notify_type): p.data for p in m.payloads if isinstance(p, NotifyPayload)}
            src = nat_detection_hash(m.spi_i, m.spi_r, IPv4Address(d.src).packed, d.sport)
            dst = nat_detection_hash(m.spi_i, m.spi_r, IPv4Address(d.dst).packed, d.dport)
            assert (got[NotifyType.NAT_DETECTION_SOURCE_IP], got[NotifyType.NAT_DETECTION_DESTINATION_IP]) == (src, dst)
            checked += 1
    assert checked == 16


def test_nat_detection_in_sa_init() -> None:
    hub = (HUB.packed, 500)
    # no NAT: both see the same addresses
    spoke = (SPOKE.packed, 500)
    i, r, outcome, _ = _init([CBC], [CBC], i_ep=Endpoints(spoke, hub), r_ep=Endpoints(hub, spoke))
    assert outcome is InitOutcome.DONE
    assert (i.sa.nat_local, i.sa.nat_peer, r.sa.nat_local, r.sa.nat_peer) == (False, False, False, False)
    # the spoke (10.0.0.2:500) is seen by the hub as 203.0.113.5:4500
    inside, outside = (IPv4Address("10.0.0.2").packed, 500), (IPv4Address("203.0.113.5").packed, 4500)
    i, r, outcome, _ = _init([CBC], [CBC], i_ep=Endpoints(inside, hub), r_ep=Endpoints(hub, outside))
    assert outcome is InitOutcome.DONE
    assert (i.sa.nat_local, i.sa.nat_peer, r.sa.nat_local, r.sa.nat_peer) == (True, False, False, True)


def _rekey(i_sa, r_sa, i_cfg, r_cfg, mid: int, pfs_i=None, pfs_r=None, seed: int = 20, old=b"\x00\x00\x00\x01"):
    from dmvpn.ike.v2.child_sa import CreateChildSa

    a = CreateChildSa(i_sa, i_cfg, SeededRandom(seed), mid, initiator=True, rekey_spi=old, pfs_group=pfs_i)
    b = CreateChildSa(r_sa, r_cfg, SeededRandom(seed + 1), mid, initiator=False, pfs_group=pfs_r)
    for _ in range(3):
        b.process_r(a.build_i(2.0), 2.0)
        resp = b.build_r(2.0)
        assert resp is not None
        done = a.process_i(resp, 2.0)
        if done is not None:
            return a, b, done
        b = CreateChildSa(r_sa, r_cfg, SeededRandom(seed + 2), mid, initiator=False, pfs_group=pfs_r)
    raise AssertionError("no end to INVALID_KE retries")


def test_create_child_sa_rekey_with_and_without_pfs() -> None:
    i, r, ia, _ra, ok, _ = _full()
    assert ok and ia.child is not None
    spoke_cfg, hub_cfg = _auth_configs()
    a, b, done = _rekey(i.sa, r.sa, spoke_cfg, hub_cfg, 2, old=ia.child.spi_i)
    assert done, a.error
    assert a.result is not None and b.result is not None
    assert a.result.child == b.result.child and b.result.rekeyed_spi == ia.child.spi_i
    assert a.result.child.keys != ia.child.keys
    p, q, done = _rekey(i.sa, r.sa, spoke_cfg, hub_cfg, 3, pfs_i=14, pfs_r=14)
    assert done and p.result is not None and q.result is not None and p.result.child == q.result.child
    # the hub rekeys the other way (it is the exchange initiator, not the IKE SA's)
    x, y, done = _rekey(r.sa, i.sa, hub_cfg, spoke_cfg, 0, pfs_i=19)
    assert done and x.result is not None and y.result is not None and x.result.child == y.result.child


def test_pfs_rekey_names_its_dh_group_in_both_sa_payloads() -> None:
    """RFC 7296 1.3.1 / 3.3.2: the KE's group is a D-H transform of the ESP
    proposal, in the request and in the responder's chosen proposal
    (strongSwan refuses an answer without it: "no acceptable proposal")."""
    from dmvpn.ike.v2.child_sa import CreateChildSa
    from dmvpn.ike.v2.protect import open_message
    from dmvpn.wire.ikev2_payloads import SaPayload
    from dmvpn.wire.ikev2_registry import TransformType

    i, r, _ia, _ra, _ok, _ = _full()
    spoke_cfg, hub_cfg = _auth_configs()
    a = CreateChildSa(i.sa, spoke_cfg, SeededRandom(7), 2, initiator=True, rekey_spi=b"\x00\x00\x00\x01",
                      pfs_group=14)
    b = CreateChildSa(r.sa, hub_cfg, SeededRandom(8), 2, initiator=False, pfs_group=14)
    request = a.build_i(2.0)
    b.process_r(request, 2.0)
    response = b.build_r(2.0)
    assert response is not None and a.process_i(response, 2.0), a.error
    for data, keys in ((request, r.sa), (response, i.sa)):
        (sa,) = [p for p in open_message(keys, data).payloads if isinstance(p, SaPayload)]
        assert all([int(t.transform_id) for t in prop.of_type(TransformType.DH)] == [14] for prop in sa.proposals)
    # without PFS no D-H transform is offered
    plain = CreateChildSa(i.sa, spoke_cfg, SeededRandom(9), 3, initiator=True)
    (sa,) = [p for p in open_message(r.sa, plain.build_i(2.0)).payloads if isinstance(p, SaPayload)]
    assert not any(prop.of_type(TransformType.DH) for prop in sa.proposals)


def test_create_child_sa_invalid_ke_retry() -> None:
    i, r, _ia, _ra, _ok, _ = _full()
    spoke_cfg, hub_cfg = _auth_configs()
    a, b, done = _rekey(i.sa, r.sa, spoke_cfg, hub_cfg, 2, pfs_i=19, pfs_r=14)
    assert done and a.pfs_group == 14 and a.result is not None and b.result is not None
    assert a.result.child == b.result.child


def test_simultaneous_rekey_lowest_nonce_loses() -> None:
    """RFC 7296 2.8.1: both crossing rekeys complete; exactly one side finds
    its new SA redundant, and both sides agree on which."""
    from dmvpn.ike.v2.child_sa import redundant

    i, r, _ia, _ra, _ok, _ = _full()
    spoke_cfg, hub_cfg = _auth_configs()
    for seed in range(30, 60):
        a, b, done1 = _rekey(i.sa, r.sa, spoke_cfg, hub_cfg, 2, seed=seed)  # spoke's rekey
        c, d, done2 = _rekey(r.sa, i.sa, hub_cfg, spoke_cfg, 1, seed=seed + 500)  # hub's, crossing it
        assert done1 and done2 and a.result and b.result and c.result and d.result
        spoke_ours, spoke_theirs = (a.result.ni, a.result.nr), (d.result.ni, d.result.nr)
        hub_ours, hub_theirs = (c.result.ni, c.result.nr), (b.result.ni, b.result.nr)
        assert spoke_theirs == hub_ours and hub_theirs == spoke_ours
        assert redundant(spoke_ours, spoke_theirs) != redundant(hub_ours, hub_theirs)
    assert redundant((b"\x01", b"\xff"), (b"\x02", b"\x03"))
    assert not redundant((b"\x05", b"\x04"), (b"\x09", b"\x03"))


def test_informational_delete_and_liveness() -> None:
    from dmvpn.ike.v2.informational import Informational, PairHalf
    from dmvpn.ike.v2.protect import open_message

    i, r, ia, ra, ok, _ = _full()
    assert ok and ia.child is not None and ra.child is not None
    spoke_in, hub_in = ia.child.spi_i, ra.child.spi_r
    # the spoke deletes the pair: it names its inbound SPI, the hub answers with its own
    a, b = Informational(i.sa, SeededRandom(3), 2, True), Informational(r.sa, SeededRandom(4), 2, False)
    b.process_r(a.build_i(5.0, delete_child_spis=[spoke_in]), 5.0, pairs={spoke_in: PairHalf(hub_in)}.get)
    resp = b.build_r(5.0)
    assert resp is not None and a.process_i(resp, 5.0)
    assert b.result.deleted_child_spis == [spoke_in] and a.result.deleted_child_spis == [hub_in]
    # a delete crossing ours: the hub no longer has the pair and answers empty
    c, d = Informational(i.sa, SeededRandom(5), 3, True), Informational(r.sa, SeededRandom(6), 3, False)
    d.process_r(c.build_i(6.0, delete_child_spis=[spoke_in]), 6.0, pairs=lambda spi: None)
    resp = d.build_r(6.0)
    assert resp is not None and c.process_i(resp, 6.0) and c.result.deleted_child_spis == []
    # deletes that cross (1.4.1): the hub is deleting the pair too; its answer names nothing
    c, d = Informational(i.sa, SeededRandom(12), 4, True), Informational(r.sa, SeededRandom(13), 4, False)
    d.process_r(c.build_i(6.5, delete_child_spis=[spoke_in]), 6.5, pairs={spoke_in: PairHalf(hub_in, True)}.get)
    resp = d.build_r(6.5)
    assert d.result.crossed_child_spis == [spoke_in] and d.result.deleted_child_spis == []
    assert resp is not None and c.process_i(resp, 6.5) and c.result.deleted_child_spis == []
    assert open_message(i.sa, resp).payloads == []
    # liveness: an empty request gets an empty answer
    e, f = Informational(r.sa, SeededRandom(7), 0, True), Informational(i.sa, SeededRandom(8), 0, False)
    f.process_r(e.build_i(7.0), 7.0, pairs=lambda spi: None)
    resp = f.build_r(7.0)
    assert resp is not None and e.process_i(resp, 7.0)
    assert decode_message(resp).exchange_type == 37
    # deleting the IKE SA
    g, h = Informational(i.sa, SeededRandom(9), 4, True), Informational(r.sa, SeededRandom(10), 4, False)
    h.process_r(g.build_i(8.0, delete_ike=True), 8.0, pairs=lambda spi: None)
    assert h.result.delete_ike and h.build_r(8.0) is not None
    # a message of the wrong SA or tampered is not answered
    bad = bytearray(g.build_i(9.0))
    bad[-1] ^= 1
    k = Informational(r.sa, SeededRandom(11), 5, False)
    k.process_r(bytes(bad), 9.0, pairs=lambda spi: None)
    assert k.build_r(9.0) is None and k.error is not None and "ICV" in k.error


def test_ike_sa_rekey_then_the_new_sa_carries_traffic() -> None:
    from dmvpn.ike.v2.ike_rekey import IkeRekey
    from dmvpn.ike.v2.informational import Informational

    i, r, _ia, _ra, ok, _ = _full()
    assert ok
    # the hub rekeys the IKE SA; it becomes the new SA's initiator (RFC 7296 2.18)
    a = IkeRekey(r.sa, [CBC], SeededRandom(40), 0, initiator=True)
    b = IkeRekey(i.sa, [DEFAULT_PROPOSAL, CBC], SeededRandom(41), 2, initiator=False)
    b.process_r(a.build_i(10.0), 10.0)
    resp = b.build_r(10.0)
    assert resp is not None and a.process_i(resp, 10.0) is True, a.error
    new_hub, new_spoke = a.new_sa, b.new_sa
    assert new_hub is not None and new_spoke is not None
    assert new_hub.initiator and not new_spoke.initiator
    assert (new_hub.spi_i, new_hub.spi_r) == (new_spoke.spi_i, new_spoke.spi_r)
    assert {new_hub.spi_i, new_hub.spi_r}.isdisjoint({i.sa.spi_i, i.sa.spi_r})
    assert new_hub.keys == new_spoke.keys and new_hub.keys != i.sa.keys
    # the new SA protects an INFORMATIONAL exchange both ways
    e, f = Informational(new_spoke, SeededRandom(42), 0, True), Informational(new_hub, SeededRandom(43), 0, False)
    f.process_r(e.build_i(11.0), 11.0, pairs=lambda spi: None)
    out = f.build_r(11.0)
    assert out is not None and e.process_i(out, 11.0)


def test_ike_sa_rekey_invalid_ke_retry() -> None:
    from dmvpn.ike.v2.ike_rekey import IkeRekey

    i, r, _ia, _ra, _ok, _ = _full()
    two = Ikev2Proposal("TWO", CBC.encryption, CBC.integrity, CBC.prf, (DhGroup.MODP_2048, DhGroup.ECP_256), 1)
    a = IkeRekey(i.sa, [two], SeededRandom(50), 2, initiator=True)
    for attempt in range(2):
        b = IkeRekey(r.sa, [CBC], SeededRandom(51 + attempt), 0, initiator=False)
        b.process_r(a.build_i(10.0), 10.0)
        resp = b.build_r(10.0)
        assert resp is not None
        done = a.process_i(resp, 10.0)
        if done is not None:
            break
    assert done is True and attempt == 1 and a.new_sa is not None and b.new_sa is not None
    assert a.new_sa.keys == b.new_sa.keys and a.new_sa.algorithms is not None
    assert a.new_sa.algorithms.group == DhGroup.ECP_256


def test_hostile_messages_never_raise() -> None:
    """Every message of a real exchange, mutated, fed to each task step:
    errors end as values (``error``, notifies, FAILED), never as exceptions."""
    from dmvpn.ike.v2.child_sa import CreateChildSa
    from dmvpn.ike.v2.informational import Informational

    i, r, _ia, _ra, ok, wire = _full()
    assert ok
    spoke_cfg, hub_cfg = _auth_configs()
    rekey_req = CreateChildSa(i.sa, spoke_cfg, SeededRandom(60), 2, True, pfs_group=19).build_i(0.0)
    rng = random.Random(99)
    seeds = [*wire, rekey_req]
    for n in range(3000):
        m = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 3)):
            m[rng.randrange(len(m))] = rng.randrange(256)
        if rng.random() < 0.2:
            del m[rng.randrange(len(m)):]
        data = bytes(m)
        step = n % 6
        if step == 0:
            IkeSaInit([CBC], SeededRandom(n), initiator=False, cookie_secret=b"s").process_r(data, 0.0)
        elif step == 1:
            t = IkeSaInit([CBC], SeededRandom(n), initiator=True)
            t.build_i(0.0)
            t.process_i(data, 0.0)
        elif step == 2:
            IkeAuth(r.sa, hub_cfg, SeededRandom(n)).process_r(data, 0.0)
        elif step == 3:
            IkeAuth(i.sa, spoke_cfg, SeededRandom(n)).process_i(data, 0.0)
        elif step == 4:
            CreateChildSa(r.sa, hub_cfg, SeededRandom(n), 2, False, pfs_group=19).process_r(data, 0.0)
        else:
            Informational(r.sa, SeededRandom(n), 2, False).process_r(data, 0.0, pairs=lambda spi: None)
