"""NHRP (RFC 2332) as Cisco DMVPN runs it: one sans-I/O engine per mGRE
interface, NHC and NHS in one (``engine.NhrpEngine``), its cache
(``cache``), state tables (``states``), the packets it builds
(``messages``), what it asks of the router (``events``), its settings from
the parsed configuration (``settings``) and the show views it fills
(``show_adapter``). Wire format: :mod:`dmvpn.wire.nhrp`."""
