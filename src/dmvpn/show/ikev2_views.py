"""View dataclasses behind ``show crypto ikev2 sa [detail]`` and ``show
crypto ikev2 session [detailed]``: what one IKEv2 SA (RFC 7296) and its
CHILD_SAs look like to an operator, in IOS-XE's words. The engine fills
them; the renderers in :mod:`dmvpn.show.ikev2_sa` only format them."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Ikev2ChildView:
    """One CHILD_SA (RFC 7296 2.17) as ``show crypto ikev2 session detailed`` lists it."""

    local_selector: str  # e.g. "10.0.0.1/0 - 10.0.0.1/65535"
    remote_selector: str
    esp_spi_in: int
    esp_spi_out: int
    encryption: str = "AES-CBC"
    keysize: int = 256
    esp_hmac: str = "SHA256"
    mode: str = "transport"


@dataclass(frozen=True, slots=True)
class Ikev2SaView:
    """One IKE SA: the row, algorithms and lifetimes, and the detail fields.

    Algorithm names are IOS-XE's (``AES-CBC``, ``SHA256``, ``SHA96``);
    ``nat_t`` is ``"not detected"`` or ``"detected outside"``/``"inside"``.
    """

    tunnel_id: int
    local_ip: str
    local_port: int
    remote_ip: str
    remote_port: int
    status: str = "READY"
    fvrf: str = "none"
    ivrf: str = "none"
    encryption: str = "AES-CBC"
    keysize: int = 256
    prf: str = "SHA256"
    hash: str = "SHA256"
    dh_group: int = 19
    auth_sign: str = "PSK"
    auth_verify: str = "PSK"
    life_time: int = 86400
    active_time: int = 0
    ce_id: int = 0
    session_id: int = 0
    local_spi: bytes = bytes(8)
    remote_spi: bytes = bytes(8)
    status_description: str = "Negotiation done"
    local_id: str = ""
    remote_id: str = ""
    local_req_msg_id: int = 0
    remote_req_msg_id: int = 0
    local_next_msg_id: int = 0
    remote_next_msg_id: int = 0
    local_req_queued: int = 0
    remote_req_queued: int = 0
    local_window: int = 1
    remote_window: int = 1
    dpd_interval: int = 0
    dpd_retry: int = 0
    nat_t: str = "not detected"
    initiator: bool = True
    ipv6: bool = False


@dataclass(frozen=True, slots=True)
class Ikev2SessionView:
    """One IKEv2 session: its IKE SA and the CHILD_SAs under it."""

    session_id: int
    sa: Ikev2SaView
    children: list[Ikev2ChildView] = field(default_factory=list)
    status: str = "UP-ACTIVE"
