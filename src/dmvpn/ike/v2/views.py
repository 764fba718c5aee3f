"""Views of our IKEv2 SAs for ``show crypto ikev2 sa`` / ``session``: the
state the tasks of :mod:`dmvpn.ike.v2` establish, in IOS-XE's words
(``AES-CBC``, ``keysize: 256``, ``PRF: SHA256``, ``Hash: SHA96``)."""

from __future__ import annotations

from dataclasses import replace
from ipaddress import IPv4Address

from dmvpn.crypto.esp_algorithms import EspTransformId
from dmvpn.crypto.ikev2_algorithms import EncrId, IntegId, PrfId
from dmvpn.ike.v2.ike_auth import ChildSaResult
from dmvpn.ike.v2.ike_sa import Ikev2Sa
from dmvpn.ike.v2.sa_init import IkeSaState
from dmvpn.show.ikev2_views import Ikev2ChildView, Ikev2SaView

ENCR_IOS = {EncrId.AES_CBC: "AES-CBC", EncrId.AES_GCM_16: "AES-GCM", EncrId.DES3: "3DES", EncrId.AES_CTR: "AES-CTR"}
PRF_IOS = {
    PrfId.HMAC_MD5: "MD5",
    PrfId.HMAC_SHA1: "SHA1",
    PrfId.HMAC_SHA2_256: "SHA256",
    PrfId.HMAC_SHA2_384: "SHA384",
    PrfId.HMAC_SHA2_512: "SHA512",
}
HASH_IOS = {
    IntegId.NONE: "None",
    IntegId.HMAC_MD5_96: "MD596",
    IntegId.HMAC_SHA1_96: "SHA96",
    IntegId.HMAC_SHA2_256_128: "SHA256",
    IntegId.HMAC_SHA2_384_192: "SHA384",
    IntegId.HMAC_SHA2_512_256: "SHA512",
}
ESP_ENCR_IOS = {EspTransformId.ESP_AES_CBC: "AES-CBC", EspTransformId.ESP_AES_GCM_16: "AES-GCM",
                EspTransformId.ESP_3DES: "3DES", EspTransformId.ESP_NULL: "NULL"}
ESP_HMAC_IOS = {
    "HMAC_SHA": "SHA96",
    "HMAC_SHA2_256": "SHA256",
    "HMAC_SHA2_384": "SHA384",
    "HMAC_SHA2_512": "SHA512",
    "HMAC_MD5": "MD596",
    "NONE": "None",
}


def sa_view(
    sa: IkeSaState,
    tunnel_id: int,
    local: tuple[IPv4Address, int],
    remote: tuple[IPv4Address, int],
    now: float,
    lifetime: int,
    local_id: str = "",
    remote_id: str = "",
) -> Ikev2SaView:
    """The ``show crypto ikev2 sa`` row of one established IKE SA."""
    algs = sa.algorithms
    assert algs is not None and sa.established_at is not None, "IKE_SA_INIT not done"
    c = algs.cipher
    local_spi, remote_spi = (sa.spi_i, sa.spi_r) if sa.initiator else (sa.spi_r, sa.spi_i)
    return Ikev2SaView(
        tunnel_id,
        str(local[0]),
        local[1],
        str(remote[0]),
        remote[1],
        status="READY",
        encryption=ENCR_IOS.get(EncrId(c.encr), EncrId(c.encr).name),
        keysize=c.key_bits or 0,
        prf=PRF_IOS.get(algs.prf, algs.prf.name),
        hash=HASH_IOS.get(IntegId(c.integ), IntegId(c.integ).name),
        dh_group=algs.group,
        life_time=lifetime,
        active_time=int(now - sa.established_at),
        local_spi=local_spi,
        remote_spi=remote_spi,
        local_id=local_id,
        remote_id=remote_id,
        nat_t="not detected" if local[1] == 500 else "detected outside",
        initiator=sa.initiator,
    )


def child_view(child: ChildSaResult, initiator: bool, local: IPv4Address, remote: IPv4Address) -> Ikev2ChildView:
    """One CHILD_SA of ``show crypto ikev2 session``: selectors and the SPIs in/out."""
    spi_in, spi_out = (child.spi_i, child.spi_r) if initiator else (child.spi_r, child.spi_i)
    esp = child.esp
    return Ikev2ChildView(
        f"{local}/0 - {local}/65535",
        f"{remote}/0 - {remote}/65535",
        int.from_bytes(spi_in, "big"),
        int.from_bytes(spi_out, "big"),
        encryption="AES-GCM" if esp.is_aead else "AES-CBC",
        keysize=esp.key_bits,
        esp_hmac=ESP_HMAC_IOS.get(esp.auth.name, esp.auth.name),
        mode="transport" if child.transport else "tunnel",
    )


def with_windows(view: Ikev2SaView, sa: Ikev2Sa) -> Ikev2SaView:
    """The detail fields only the engine knows: message IDs and DPD settings."""
    dpd = sa.profile.dpd if sa.profile is not None else None
    return replace(view, local_next_msg_id=sa.next_mid, remote_next_msg_id=sa.peer_mid,
                   local_req_msg_id=max(sa.next_mid - 1, 0), remote_req_msg_id=max(sa.peer_mid - 1, 0),
                   local_req_queued=len(sa.queue), dpd_interval=dpd.interval if dpd else 0,
                   dpd_retry=dpd.retry if dpd else 0)
