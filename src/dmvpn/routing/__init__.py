"""Routing protocols for real mode: the routing model of an IOS config
translated for FRR (:mod:`dmvpn.routing.frr_config`). This stack runs no
OSPF or BGP of its own; FRR's daemons do (process control in
:mod:`dmvpn.runtime.real.frr`)."""
