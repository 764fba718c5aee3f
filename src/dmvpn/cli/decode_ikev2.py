"""IKEv2 messages for ``dmvpn decode``: description as JSON-able records and
decryption with a Wireshark ``ikev2_decryption_table``.

A message is IKEv2 when its header's major version is 2 (RFC 7296 3.1).
With a key table, the SK payload of a message is decrypted with the keys of
its (SPIi, SPIr) pair and the sender's direction (the Initiator flag picks
SK_ei/SK_ai or SK_er/SK_ar, section 2.14); Encrypted Fragments (RFC 7383)
are decrypted one by one and the message is shown, reassembled, on the
frame that completes it.
"""

from __future__ import annotations

from enum import IntFlag
from typing import Any

from dmvpn.ike.v2.keytable import Ikev2KeyRecord
from dmvpn.wire.errors import DecodeError
from dmvpn.wire.ikev2 import (
    DecryptedFragment,
    Ikev2Message,
    decode_message,
    decrypt_fragment,
    decrypt_message,
    reassemble,
)
from dmvpn.wire.ikev2_payloads import (
    AuthPayload,
    CertPayload,
    DeletePayload,
    EncryptedFragmentPayload,
    EncryptedPayload,
    IdPayload,
    KePayload,
    NotifyPayload,
    Payload,
    SaPayload,
    TsPayload,
    UnknownPayload,
)
from dmvpn.wire.ikev2_registry import HeaderFlags
from dmvpn.wire.isakmp_registry import name_of


def is_ikev2(data: bytes) -> bool:
    """True if ``data`` has an IKE header whose major version is 2."""
    return len(data) >= 28 and data[17] >> 4 == 2


class Ikev2Decryptor:
    """Decrypts the SK and SKF payloads of a capture with a key table."""

    def __init__(self, table: dict[tuple[bytes, bytes], Ikev2KeyRecord]) -> None:
        self.table = table
        self._fragments: dict[tuple[bytes, bytes, int, int], dict[int, DecryptedFragment]] = {}

    def decrypt(self, data: bytes, msg: Ikev2Message) -> Ikev2Message | None:
        """The decrypted message; None while fragments are still missing.
        DecodeError says why it cannot be decrypted."""
        rec = self.table.get((msg.spi_i, msg.spi_r))
        if rec is None:
            raise DecodeError(0, f"no key for SPIs {msg.spi_i.hex()}/{msg.spi_r.hex()}")
        key_e, key_a = rec.keys_for(msg.from_initiator)
        if isinstance(msg.encrypted, EncryptedPayload):
            return decrypt_message(data, rec.cipher, key_e, key_a)
        frag = decrypt_fragment(data, rec.cipher, key_e, key_a)
        key = (msg.spi_i, msg.spi_r, msg.message_id, int(msg.flags & (HeaderFlags.INITIATOR | HeaderFlags.RESPONSE)))
        got = self._fragments.setdefault(key, {})
        got[frag.fragment_number] = frag
        if len(got) < frag.total_fragments:
            return None
        del self._fragments[key]
        return reassemble(list(got.values()))


def describe_payload(p: Payload) -> dict[str, Any]:
    """The payload's type and main fields as plain JSON-able values."""
    d: dict[str, Any] = {"type": name_of(p.payload_type), "type_number": int(p.payload_type)}
    if p.critical:
        d["critical"] = True
    if isinstance(p, SaPayload):
        d["proposals"] = [
            {
                "number": pr.number,
                "protocol": name_of(pr.protocol_id),
                "spi": pr.spi.hex(),
                "transforms": [
                    {
                        "type": name_of(t.transform_type),
                        "id": name_of(t.transform_id),
                        "key_length": t.key_length,
                    }
                    for t in pr.transforms
                ],
            }
            for pr in p.proposals
        ]
    elif isinstance(p, KePayload):
        d.update(group=name_of(p.group), data=p.data.hex())
    elif isinstance(p, IdPayload):
        d.update(id_type=name_of(p.id_type), id=p.describe())
    elif isinstance(p, AuthPayload):
        d.update(method=name_of(p.method), data=p.data.hex())
    elif isinstance(p, NotifyPayload):
        d.update(notify=name_of(p.notify_type), protocol=name_of(p.protocol_id), spi=p.spi.hex(), data=p.data.hex())
    elif isinstance(p, DeletePayload):
        d.update(protocol=name_of(p.protocol_id), spis=[s.hex() for s in p.spis])
    elif isinstance(p, TsPayload):
        d["selectors"] = [s.describe() for s in p.selectors]
    elif isinstance(p, CertPayload):
        d.update(encoding=name_of(p.encoding), length=len(p.data))
    elif isinstance(p, EncryptedFragmentPayload):
        d.update(fragment=p.fragment_number, total=p.total_fragments, length=len(p.body))
    elif isinstance(p, EncryptedPayload):
        d.update(length=len(p.body))
    elif isinstance(p, UnknownPayload):
        d.update(data=p.data.hex())
    else:
        d["data"] = p.data.hex()  # nonce, vendor ID
    return d


def flag_names(flags: int, flag_enum: type[IntFlag]) -> str:
    """``A|B`` for the set flags of an IKE header, ``none`` when none is set."""
    names = [f.name or "" for f in flag_enum if flags & f]
    return "|".join(names) if names else "none"


def decode_ikev2(data: bytes, decryptor: Ikev2Decryptor | None) -> dict[str, Any]:
    """Record fields for one IKEv2 message (DecodeError if it does not decode)."""
    msg = decode_message(data)
    rec: dict[str, Any] = {}
    if msg.encrypted is not None and decryptor is not None and decryptor.table:
        try:
            plain = decryptor.decrypt(data, msg)
            if plain is None:
                rec["fragment_pending"] = True
            else:
                msg = plain
                rec["decrypted"] = True
        except DecodeError as exc:
            rec["decrypt_error"] = str(exc)
    rec.update(
        version=2,
        exchange=name_of(msg.exchange_type),
        exchange_number=int(msg.exchange_type),
        spi_i=msg.spi_i.hex(),
        spi_r=msg.spi_r.hex(),
        message_id=f"{msg.message_id:08x}",
        flags=flag_names(msg.flags, HeaderFlags),
        payloads=[describe_payload(p) for p in msg.payloads],
    )
    if msg.trailing:
        rec["trailing_bytes"] = msg.trailing
    return rec


def header_line(r: dict[str, Any]) -> str:
    """The text header of an IKEv2 record (after ``frame N src -> dst``)."""
    return (
        f"{r['exchange']}({r['exchange_number']}) spi_i={r['spi_i']} spi_r={r['spi_r']} "
        f"msgid={r['message_id']} flags={r['flags']}"
    )
