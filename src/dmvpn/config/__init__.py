"""IOS-style configuration: parser, typed model, diagnostics.

``parse_config(text, source)`` returns a :class:`ParseResult` with every
error, warning and ignored line; ``load_config(path)`` returns the
:class:`RouterConfig` or raises the first :class:`ConfigError`.
"""

from dmvpn.config.diagnostics import ConfigError, ConfigWarning, IgnoredLine
from dmvpn.config.model import (
    AccessList,
    AclAction,
    AclEntry,
    CryptoMap,
    CryptoMapEntry,
    Interface,
    IpsecProfile,
    IsakmpKeepalive,
    IsakmpKey,
    IsakmpPolicy,
    KeepaliveMode,
    NhrpConfig,
    NhrpMap,
    NhrpServer,
    PortMatch,
    RouterConfig,
    SaLifetime,
    StaticRoute,
    TransformSet,
    TunnelConfig,
    TunnelMode,
)
from dmvpn.config.parser import ParseResult, load_config, parse_config

__all__ = [
    "AccessList",
    "AclAction",
    "AclEntry",
    "ConfigError",
    "ConfigWarning",
    "CryptoMap",
    "CryptoMapEntry",
    "IgnoredLine",
    "Interface",
    "IpsecProfile",
    "IsakmpKeepalive",
    "IsakmpKey",
    "IsakmpPolicy",
    "KeepaliveMode",
    "NhrpConfig",
    "NhrpMap",
    "NhrpServer",
    "ParseResult",
    "PortMatch",
    "RouterConfig",
    "SaLifetime",
    "StaticRoute",
    "TransformSet",
    "TunnelConfig",
    "TunnelMode",
    "load_config",
    "parse_config",
]
