"""dmvpn: an IPsec DMVPN stack (IKEv1, ESP, GRE, NHRP) with IOS-style configs and output."""

__version__ = "0.1.0"
