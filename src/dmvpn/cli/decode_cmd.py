"""``dmvpn decode``: print every ISAKMP (IKEv1) and IKEv2 message in a capture.

UDP 500 carries ISAKMP directly; UDP 4500 carries it behind the non-ESP
marker (RFC 3948 section 2.2). With ``--ikev1-keys`` (lines of
``initiator-cookie-hex,encryption-key-hex``, Wireshark's
ikev1_decryption_table format) encrypted messages are decrypted: the
phase-1 IV is hash(g^xi | g^xr) from the KE payloads seen in the capture,
each later message's IV is the last ciphertext block of the previous message
of the same exchange, and a new exchange starts from hash(last phase-1 block
| M-ID) (RFC 2409 appendix B). IKEv2 messages (major version 2) are
described by :mod:`dmvpn.cli.decode_ikev2` and decrypted with
``--ikev2-keys`` (Wireshark's ikev2_decryption_table format). A packet that
does not decode becomes an error line and the run goes on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from dmvpn.cli.decode_ikev2 import Ikev2Decryptor, decode_ikev2, flag_names, header_line, is_ikev2
from dmvpn.crypto.ike_algorithms import UnsupportedAlgorithm, cipher_key_size, hash_size, ike_cipher
from dmvpn.crypto.ikev1_kdf import exchange_iv, phase1_iv
from dmvpn.ike.v2.keytable import Ikev2KeyRecord, KeyTableError, load_key_table
from dmvpn.wire.errors import DecodeError
from dmvpn.wire.isakmp import (
    IKE_PORT,
    NAT_T_PORT,
    IsakmpMessage,
    Udp4500Kind,
    classify_udp4500,
    decode_message,
    decrypt_message,
)
from dmvpn.wire.isakmp_payloads import (
    Attribute,
    CertPayload,
    CertRequestPayload,
    DeletePayload,
    IdPayload,
    KePayload,
    NatOaPayload,
    NotifyPayload,
    Payload,
    SaPayload,
    UnknownPayload,
)
from dmvpn.wire.isakmp_registry import (
    HeaderFlags,
    PayloadType,
    Phase1Attribute,
    ProtocolId,
    name_of,
)
from dmvpn.wire.pcap_reader import CaptureError, UdpDatagram, read_frames, udp_datagram


class KeysFileError(ValueError):
    """A bad line in a keys file (message names the line)."""


def load_ikev1_keys(path: str | Path) -> dict[bytes, bytes]:
    """Parse ``cookie,key`` lines (hex; quotes, blank lines and # comments allowed)."""
    keys: dict[bytes, bytes] = {}
    try:
        lines = Path(path).read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise KeysFileError(f"{path}: cannot read keys file ({exc})") from None
    for n, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        parts = [p.strip().strip('"') for p in text.split(",")]
        if len(parts) != 2:
            raise KeysFileError(f"{path} line {n}: expected 'initiator-cookie-hex,encryption-key-hex'")
        try:
            cookie, key = bytes.fromhex(parts[0]), bytes.fromhex(parts[1])
        except ValueError:
            raise KeysFileError(f"{path} line {n}: cookie and key must be hex") from None
        if len(cookie) != 8:
            raise KeysFileError(f"{path} line {n}: initiator cookie must be 8 bytes, got {len(cookie)}")
        if not key:
            raise KeysFileError(f"{path} line {n}: empty encryption key")
        keys[cookie] = key
    if not keys:
        raise KeysFileError(f"{path}: no 'initiator-cookie-hex,encryption-key-hex' line in the keys file")
    return keys


@dataclass
class _SaState:
    """What the decryptor learnt about one ISAKMP SA from the capture."""

    initiator_addr: str | None = None
    encryption: int | None = None
    hash_alg: int | None = None
    key_length: int | None = None
    g_xi: bytes | None = None
    g_xr: bytes | None = None
    ivs: dict[int, bytes] = field(default_factory=dict)
    last_phase1_block: bytes | None = None
    seen: dict[bytes, IsakmpMessage] = field(default_factory=dict)


class CaptureDecryptor:
    """Follows IKEv1 exchanges through a capture to decrypt them, the way
    Wireshark's ISAKMP dissector does (per initiator cookie, per message ID)."""

    def __init__(self, keys: dict[bytes, bytes]) -> None:
        self.keys = keys
        self._sas: dict[bytes, _SaState] = {}

    def _state(self, msg: IsakmpMessage, src: str) -> _SaState:
        st = self._sas.setdefault(msg.initiator_cookie, _SaState())
        if st.initiator_addr is None:
            st.initiator_addr = src
        return st

    def observe(self, msg: IsakmpMessage, src: str) -> None:
        """Learn the chosen phase-1 transform and the KE values from a
        cleartext (or decrypted) message."""
        st = self._state(msg, src)
        for p in msg.payloads:
            if isinstance(p, SaPayload) and msg.message_id == 0:
                self._learn_transform(st, p, responder=(src != st.initiator_addr))
            elif isinstance(p, KePayload) and msg.message_id == 0:
                if src == st.initiator_addr:
                    st.g_xi = p.data
                else:
                    st.g_xr = p.data

    @staticmethod
    def _learn_transform(st: _SaState, sa: SaPayload, responder: bool) -> None:
        for prop in sa.proposals:
            if prop.protocol_id != ProtocolId.ISAKMP or not prop.transforms:
                continue
            if not responder and st.encryption is not None:
                return
            t = prop.transforms[0]
            enc, hsh, klen = (t.get(Phase1Attribute.ENCRYPTION_ALGORITHM), t.get(Phase1Attribute.HASH_ALGORITHM),
                              t.get(Phase1Attribute.KEY_LENGTH))
            st.encryption = enc if isinstance(enc, int) else None
            st.hash_alg = hsh if isinstance(hsh, int) else None
            st.key_length = klen if isinstance(klen, int) else None
            return

    def decrypt(self, data: bytes, msg: IsakmpMessage, src: str) -> IsakmpMessage:
        """Decrypt an encrypted message; DecodeError says why it cannot be."""
        key = self.keys.get(msg.initiator_cookie)
        if key is None:
            raise DecodeError(0, f"no key for initiator cookie {msg.initiator_cookie.hex()}")
        st = self._state(msg, src)
        if st.encryption is None or st.hash_alg is None:
            raise DecodeError(0, "encrypted, but the phase-1 SA negotiation was not seen")
        try:
            cipher = ike_cipher(st.encryption)
            size = cipher_key_size(st.encryption, st.key_length)
            hash_size(st.hash_alg)  # rejects a hash we cannot compute the IV with
        except UnsupportedAlgorithm as exc:
            raise DecodeError(0, str(exc)) from None
        if len(key) < size:
            raise DecodeError(0, f"key for {msg.initiator_cookie.hex()} is {len(key)} bytes, need {size}")
        if data in st.seen:  # a retransmission: same IV as the original, chain unchanged
            return st.seen[data]
        iv = st.ivs.get(msg.message_id)
        if iv is None:
            if st.g_xi is None or st.g_xr is None:
                raise DecodeError(0, "encrypted, but both KE payloads were not seen")
            first_iv = phase1_iv(st.hash_alg, st.g_xi, st.g_xr, cipher.block_size)
            if msg.message_id == 0:
                iv = first_iv
            else:
                # With no encrypted phase-1 message (Aggressive Mode) the chain
                # still starts from the phase-1 IV, as Wireshark does.
                last = st.last_phase1_block if st.last_phase1_block is not None else first_iv
                iv = exchange_iv(st.hash_alg, last, msg.message_id, cipher.block_size)
        plain, next_iv = decrypt_message(data, cipher, key[:size], iv)
        st.ivs[msg.message_id] = next_iv
        if msg.message_id == 0:
            st.last_phase1_block = next_iv
        st.seen[data] = plain
        return plain


def _attr(a: Attribute) -> str:
    value = a.value.hex() if isinstance(a.value, bytes) else name_of(a.value)
    return f"{name_of(a.type)}={value}"


def describe_payload(p: Payload) -> dict[str, Any]:
    """The payload's type and main fields as plain JSON-able values."""
    d: dict[str, Any] = {"type": name_of(p.payload_type), "type_number": int(p.payload_type)}
    if isinstance(p, SaPayload):
        d["doi"], d["situation"] = name_of(p.doi), int(p.situation)
        d["proposals"] = [
            {
                "number": pr.number,
                "protocol": name_of(pr.protocol_id),
                "spi": pr.spi.hex(),
                "transforms": [
                    {"number": t.number, "id": name_of(t.transform_id), "attributes": [_attr(a) for a in t.attributes]}
                    for t in pr.transforms
                ],
            }
            for pr in p.proposals
        ]
    elif isinstance(p, IdPayload):
        d.update(id_type=name_of(p.id_type), protocol=p.protocol_id, port=p.port, id=p.describe())
    elif isinstance(p, NotifyPayload):
        d.update(notify=name_of(p.notify_type), protocol=name_of(p.protocol_id), spi=p.spi.hex(), data=p.data.hex())
    elif isinstance(p, DeletePayload):
        d.update(protocol=name_of(p.protocol_id), spis=[s.hex() for s in p.spis])
    elif isinstance(p, NatOaPayload):
        d.update(id_type=name_of(p.id_type), address=p.address.hex())
    elif isinstance(p, CertPayload):
        d.update(encoding=name_of(p.encoding), length=len(p.data))
    elif isinstance(p, CertRequestPayload):
        d.update(encoding=name_of(p.encoding), authority=p.authority.hex())
    elif isinstance(p, UnknownPayload):
        d.update(data=p.data.hex())
    else:
        d["data"] = p.data.hex()  # KE, HASH, SIG, nonce, vendor ID, NAT-D
    return d


def payload_type_sequence(msg: IsakmpMessage) -> list[int]:
    """Payload types in order with SA proposals/transforms flattened, the way
    tshark lists ``isakmp.typepayload``."""
    out: list[int] = []
    for p in msg.payloads:
        out.append(int(p.payload_type))
        if isinstance(p, SaPayload):
            for pr in p.proposals:
                out.append(int(PayloadType.PROPOSAL))
                out.extend(int(PayloadType.TRANSFORM) for _ in pr.transforms)
    return out


def decode_datagram(
    dgram: UdpDatagram, decryptor: CaptureDecryptor | None, v2: Ikev2Decryptor | None = None
) -> dict[str, Any] | None:
    """One capture record: None if the datagram is not ISAKMP; a dict with
    either the decoded message or an ``error``."""
    rec: dict[str, Any] = {
        "frame": dgram.frame,
        "src": f"{dgram.src}:{dgram.sport}",
        "dst": f"{dgram.dst}:{dgram.dport}",
    }
    data = dgram.payload
    ports = (dgram.sport, dgram.dport)
    try:
        if NAT_T_PORT in ports:
            if classify_udp4500(data) is not Udp4500Kind.IKE:
                return None
            data = data[4:]
        elif IKE_PORT not in ports:
            return None
        if is_ikev2(data):
            rec.update(decode_ikev2(data, v2))
            return rec
        msg = decode_message(data)
        if msg.encrypted and decryptor is not None and decryptor.keys:
            try:
                msg = decryptor.decrypt(data, msg, dgram.src)
                rec["decrypted"] = True
            except DecodeError as exc:
                rec["decrypt_error"] = str(exc)
        if decryptor is not None and msg.payloads:
            decryptor.observe(msg, dgram.src)
    except DecodeError as exc:
        rec["error"] = str(exc)
        return rec
    rec.update(
        exchange=name_of(msg.exchange_type),
        exchange_number=int(msg.exchange_type),
        initiator_cookie=msg.initiator_cookie.hex(),
        responder_cookie=msg.responder_cookie.hex(),
        message_id=f"{msg.message_id:08x}",
        flags=flag_names(msg.flags, HeaderFlags),
        encrypted=msg.encrypted,
        payloads=[describe_payload(p) for p in msg.payloads],
    )
    if msg.encrypted_body is not None:
        rec["encrypted_bytes"] = len(msg.encrypted_body)
    return rec


def decode_capture(
    path: str | Path,
    keys: dict[bytes, bytes] | None = None,
    ikev2_keys: dict[tuple[bytes, bytes], Ikev2KeyRecord] | None = None,
) -> list[dict[str, Any]]:
    """Every ISAKMP (IKEv1 and IKEv2) record of a capture, in frame order."""
    decryptor = CaptureDecryptor(keys or {})
    v2 = Ikev2Decryptor(ikev2_keys or {})
    records: list[dict[str, Any]] = []
    try:
        for frame in read_frames(path, strict=True):
            try:
                dgram = udp_datagram(frame)
            except DecodeError as exc:
                records.append({"frame": frame.number, "error": f"IPv4/UDP: {exc}"})
                continue
            if dgram is None:
                continue
            rec = decode_datagram(dgram, decryptor, v2)
            if rec is not None:
                records.append(rec)
    except CaptureError as exc:
        if not records:
            raise
        raise PartialCapture(str(exc), records) from None
    return records


class PartialCapture(CaptureError):
    """The capture is cut short: ``records`` holds what came before the cut."""

    def __init__(self, message: str, records: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.records = records


def _short(value: Any) -> str:
    """Long hex strings cut to 32 bytes, with the full length."""
    text = str(value)
    if isinstance(value, str) and len(text) > 80:
        return f"{text[:64]}...({len(text) // 2} bytes)"
    return text


def _payload_line(d: dict[str, Any]) -> str:
    fields = {k: v for k, v in d.items() if k not in ("type", "type_number", "proposals")}
    text = f"  {d['type']}({d['type_number']})"
    if fields:
        text += " " + " ".join(f"{k}={_short(v)}" for k, v in fields.items())
    lines = [text]
    for pr in d.get("proposals", []):
        lines.append(f"    proposal #{pr['number']} {pr['protocol']} spi={pr['spi'] or '-'}")
        for t in pr["transforms"]:
            if "attributes" in t:  # IKEv1
                lines.append(f"      transform #{t['number']} {t['id']} " + " ".join(t["attributes"]))
            else:  # IKEv2
                klen = f" key_length={t['key_length']}" if t["key_length"] is not None else ""
                lines.append(f"      transform {t['type']} {t['id']}{klen}")
    return "\n".join(lines)


def render_text(records: list[dict[str, Any]]) -> str:
    """Human-readable lines for :func:`decode_capture` records."""
    out: list[str] = []
    for r in records:
        where = f"{r.get('src', '?')} -> {r.get('dst', '?')}"
        if "error" in r:
            out.append(f"frame {r['frame']} {where} ERROR {r['error']}")
            continue
        if r.get("version") == 2:
            head = f"frame {r['frame']} {where} {header_line(r)}"
        else:
            head = (
                f"frame {r['frame']} {where} {r['exchange']}({r['exchange_number']}) "
                f"icookie={r['initiator_cookie']} rcookie={r['responder_cookie']} "
                f"msgid={r['message_id']} flags={r['flags']}"
            )
        if r.get("decrypted"):
            head += " [decrypted]"
        out.append(head)
        if "decrypt_error" in r:
            out.append(f"  (not decrypted: {r['decrypt_error']})")
        if r.get("fragment_pending"):
            out.append("  (fragment decrypted; the message follows with its last fragment)")
        if "encrypted_bytes" in r and not r.get("decrypted"):
            out.append(f"  <{r['encrypted_bytes']} encrypted bytes>")
        out.extend(_payload_line(p) for p in r["payloads"])
    return "\n".join(out)


@click.command("decode")
@click.argument("capture", type=click.Path(dir_okay=False))
@click.option("--ikev1-keys", "keys_file", type=click.Path(dir_okay=False), default=None,
              help="File of 'initiator-cookie-hex,encryption-key-hex' lines (Wireshark ikev1_decryption_table).")
@click.option("--ikev2-keys", "ikev2_file", type=click.Path(dir_okay=False), default=None,
              help="Wireshark ikev2_decryption_table file: 'SPIi,SPIr,SK_ei,SK_er,\"encr\",SK_ai,SK_ar,\"integ\"'.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def decode_command(capture: str, keys_file: str | None, ikev2_file: str | None, as_json: bool) -> None:
    """Print every ISAKMP and IKEv2 message in CAPTURE (pcap or pcapng, gzip allowed)."""
    cut: PartialCapture | None = None
    try:
        keys = load_ikev1_keys(keys_file) if keys_file else {}
        v2_keys = load_key_table(ikev2_file) if ikev2_file else {}
        records = decode_capture(capture, keys, v2_keys)
    except PartialCapture as exc:  # print what was there, then fail on the cut
        records, cut = exc.records, exc
    except (KeysFileError, KeyTableError, CaptureError) as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps(records, indent=2))
    else:
        text = render_text(records)
        if text:
            click.echo(text)
    if cut is not None:
        raise click.ClickException(str(cut))


__all__ = ["CaptureDecryptor", "decode_capture", "decode_command", "load_ikev1_keys"]
