"""GRE / mGRE tunnel interfaces: overlay next hop -> NBMA address -> GRE.

:class:`~dmvpn.tunnel.interface.TunnelInterface` is the sans-I/O interface
object (RFC 2784/2890 GRE, static and NHRP-learnt overlay -> NBMA maps,
tunnel key check, IOS interface counters).
"""
