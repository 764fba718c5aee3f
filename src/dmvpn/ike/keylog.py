"""Export negotiated ESP keys for Wireshark/tshark (its ``esp_sa`` UAT), as
strongSwan's save-keys plugin does: a debugging aid to decrypt captures of
the lab or of a real run with an independent decoder."""

from __future__ import annotations

from dmvpn.crypto.esp_algorithms import EspAuthAlgorithm, EspTransformId
from dmvpn.ike.isakmp_sa import ChildSa

_ENC = {
    EspTransformId.ESP_AES_CBC: "AES-CBC [RFC3602]",
    EspTransformId.ESP_3DES: "TripleDES-CBC [RFC2451]",
    EspTransformId.ESP_NULL: "NULL",
    EspTransformId.ESP_AES_GCM_16: "AES-GCM with 16 octet ICV [RFC4106]",
}
_AUTH = {
    EspAuthAlgorithm.HMAC_SHA: "HMAC-SHA-1-96 [RFC2404]",
    EspAuthAlgorithm.HMAC_MD5: "HMAC-MD5-96 [RFC2403]",
    EspAuthAlgorithm.HMAC_SHA2_256: "HMAC-SHA-256-128 [RFC4868]",
    EspAuthAlgorithm.HMAC_SHA2_384: "HMAC-SHA-384-192 [RFC4868]",
    EspAuthAlgorithm.HMAC_SHA2_512: "HMAC-SHA-512-256 [RFC4868]",
    EspAuthAlgorithm.NONE: "NULL",
}


def esp_sa_lines(child: ChildSa) -> list[str]:
    """Two ``esp_sa`` UAT records (inbound, outbound) for one pair."""
    esp = child.sa_in.transform
    enc, auth = _ENC[esp.encr], _AUTH[esp.auth]
    enc_in, auth_in, enc_out, auth_out = child.keys
    rows = [(child.peer, child.local, child.sa_in.spi, enc_in, auth_in),
            (child.local, child.peer, child.sa_out.spi, enc_out, auth_out)]
    return [f'"IPv4","{src}","{dst}","0x{spi:08x}","{enc}","0x{ek.hex()}","{auth}","0x{ak.hex()}"'
            for src, dst, spi, ek, ak in rows]
