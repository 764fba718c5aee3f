"""IKEv2 (RFC 7296): key tables for Wireshark and, next, the exchanges as tasks."""
