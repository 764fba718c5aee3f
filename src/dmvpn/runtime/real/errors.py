"""The one error type of the real runtime: a condition the operator must fix
(not root, no TUN driver, address in use ...), printed as one line."""

from __future__ import annotations


class RuntimeSetupError(Exception):
    """Opening a socket, the TUN device or the control socket failed;
    ``str()`` is the one-line message for the operator."""
