"""IKEv1 (RFC 2409) for the router: Main Mode with pre-shared keys, Quick
Mode, Informational (DELETE, notifies, DPD per RFC 3706), NAT traversal
(RFC 3947), lifetimes and rekeying shaped by behaviour profiles.

Public API::

    from dmvpn.ike import Ikev1Engine, get_profile, ChildPolicy
    engine = Ikev1Engine(name, config, sad, random, get_profile("cisco-iosxe"), policies, traffic)
    engine.receive(now, src, sport, dst, dport, data)   # an ISAKMP message
    engine.acquire(now, policy, peer, local, selector)  # traffic found no SA
    engine.handle_timer(now); engine.next_deadline()
    engine.poll_datagrams(); engine.poll_events()      # UDP to send, LogEvents

The router sees any IKE version through :class:`~dmvpn.ike.manager.KeyManager`
(``ike_major_version(payload)`` picks the manager for a UDP 500/4500 payload);
exchanges are task objects over :class:`~dmvpn.ike.transport.IkeTransport`.
"""

from dmvpn.ike.engine import Ikev1Engine
from dmvpn.ike.manager import Datagram, KeyManager, ike_major_version
from dmvpn.ike.profiles import PROFILES, BehaviourProfile, UnknownProfile, get_profile
from dmvpn.ike.proposals import ChildPolicy

__all__ = ["PROFILES", "BehaviourProfile", "ChildPolicy", "Datagram", "Ikev1Engine", "KeyManager", "UnknownProfile",
           "get_profile", "ike_major_version"]
