"""The ``show crypto ...`` command line: IOS keyword matching (unique
abbreviations such as ``sh cry isa sa``), the optional ``| json`` suffix, and
IOS's error texts for bad input. Rendering is delegated to the renderers;
the state comes from a :class:`StateProvider` the router implements.

Commands::

    show crypto ipsec sa [peer ADDR | interface NAME] [detail]
    show crypto isakmp sa [detail]
    show crypto session [remote ADDR] [detail]
    show crypto isakmp policy
    show crypto ipsec profile
    show crypto ipsec transform-set
    show ip route
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from dmvpn.config.model import RouterConfig
from dmvpn.show import config_shows, ip_route, ipsec_sa, isakmp_sa, session
from dmvpn.show.views import CryptoSessionView, IpRouteView, IpsecInterfaceView, IsakmpSaView

INVALID_INPUT = "% Invalid input detected at '^' marker."
INCOMPLETE = "% Incomplete command."


class StateProvider(Protocol):
    """What the show commands read from a router (``dmvpn.node``'s adapter
    implements it)."""

    def ipsec_sa_views(self) -> Sequence[IpsecInterfaceView]:
        """The IPsec SAs by interface and flow, in IOS order."""
        ...

    def isakmp_sa_views(self) -> Sequence[IsakmpSaView]:
        """The ISAKMP SAs, IPv4 then IPv6, in creation order."""
        ...

    def crypto_session_views(self) -> Sequence[CryptoSessionView]:
        """One entry per (interface, peer)."""
        ...

    def running_config(self) -> RouterConfig:
        """The configuration in force."""
        ...

    def ip_route_view(self) -> IpRouteView:
        """The installed IPv4 routes."""
        ...


@dataclass
class _Node:
    """A node of IOS's keyword tree: keywords, at most one parameter, and the
    command it completes (None: more input needed)."""

    keywords: dict[str, _Node] = field(default_factory=dict)
    param: tuple[str, Callable[[str], bool], _Node] | None = None
    command: str | None = None


def _is_address(token: str) -> bool:
    try:
        ipaddress.ip_address(token)
    except ValueError:
        return False
    return True


def _is_name(token: str) -> bool:
    return token.replace("/", "").replace(".", "").replace("-", "").isalnum()


def _leaf(command: str) -> _Node:
    return _Node(command=command)


def _with_detail(command: str) -> _Node:
    return _Node(keywords={"detail": _leaf(command)}, command=command)


def _grammar() -> _Node:
    sa = _with_detail("ipsec-sa")
    sa.keywords["peer"] = _Node(param=("peer", _is_address, _with_detail("ipsec-sa")))
    sa.keywords["interface"] = _Node(param=("interface", _is_name, _with_detail("ipsec-sa")))
    crypto_session = _with_detail("session")
    crypto_session.keywords["remote"] = _Node(param=("remote", _is_address, _with_detail("session")))
    crypto = _Node(
        keywords={
            "ipsec": _Node(
                keywords={
                    "sa": sa,
                    "profile": _leaf("ipsec-profile"),
                    "transform-set": _leaf("transform-set"),
                }
            ),
            "isakmp": _Node(keywords={"sa": _with_detail("isakmp-sa"), "policy": _leaf("isakmp-policy")}),
            "session": crypto_session,
        }
    )
    ip = _Node(keywords={"route": _leaf("ip-route")})
    return _Node(keywords={"show": _Node(keywords={"crypto": crypto, "ip": ip})})


_GRAMMAR = _grammar()


class ShowSyntaxError(Exception):
    """Bad input: ``text`` is what IOS prints for it."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


@dataclass
class ParsedShow:
    """A recognised command: which show, its arguments, and ``| json``."""

    command: str
    args: dict[str, str]
    detail: bool
    json: bool


def _tokens(text: str) -> list[tuple[int, str]]:
    """The words of ``text`` with their columns (for the caret)."""
    return [(m.start(), m.group()) for m in re.finditer(r"\S+", text)]


def _caret(column: int, prompt: str) -> str:
    return " " * (len(prompt) + column) + "^\n" + INVALID_INPUT


def parse_show(line: str, prompt: str = "") -> ParsedShow:
    """Match ``line`` against the keyword tree; raise :class:`ShowSyntaxError`
    with IOS's text (caret under the first bad word, offset by ``prompt``)."""
    body, bar, pipe = line.partition("|")
    want_json = False
    if bar:
        pipe_tokens = _tokens(pipe)
        if not pipe_tokens:
            raise ShowSyntaxError(INCOMPLETE)
        if not "json".startswith(pipe_tokens[0][1].lower()):
            raise ShowSyntaxError(_caret(len(body) + 1 + pipe_tokens[0][0], prompt))
        if len(pipe_tokens) > 1:
            raise ShowSyntaxError(_caret(len(body) + 1 + pipe_tokens[1][0], prompt))
        want_json = True
    node = _GRAMMAR
    args: dict[str, str] = {}
    detail = False
    tokens = _tokens(body)
    if not tokens:
        raise ShowSyntaxError(INCOMPLETE)
    for column, token in tokens:
        word = token.lower()
        matches = [k for k in node.keywords if k.startswith(word)]
        if word in node.keywords:
            matches = [word]
        if len(matches) == 1:
            detail = detail or matches[0] == "detail"
            node = node.keywords[matches[0]]
            continue
        if len(matches) > 1:
            raise ShowSyntaxError(f'% Ambiguous command:  "{line.strip()}"')
        if node.param is not None and node.param[1](token):
            name, _check, node = node.param
            args[name] = token
            continue
        raise ShowSyntaxError(_caret(column, prompt))
    if node.command is None:
        raise ShowSyntaxError(INCOMPLETE)
    return ParsedShow(node.command, args, detail, want_json)


def render(parsed: ParsedShow, state: StateProvider) -> str:
    """The output of an already parsed command: IOS text, or JSON with ``| json``."""
    cmd, detail = parsed.command, parsed.detail
    text: Callable[[], str]
    data: Callable[[], Any]
    if cmd == "ipsec-sa":
        views = ipsec_sa.select(state.ipsec_sa_views(), parsed.args.get("peer"), parsed.args.get("interface"))
        text, data = lambda: ipsec_sa.render_text(views, detail), lambda: ipsec_sa.render_json(views)
    elif cmd == "isakmp-sa":
        sas = state.isakmp_sa_views()
        text, data = lambda: isakmp_sa.render_text(sas, detail), lambda: isakmp_sa.render_json(sas, detail)
    elif cmd == "session":
        sessions = session.select(state.crypto_session_views(), parsed.args.get("remote"))
        text, data = lambda: session.render_text(sessions, detail), lambda: session.render_json(sessions, detail)
    elif cmd == "ip-route":
        routes = state.ip_route_view()
        text, data = lambda: ip_route.render_text(routes), lambda: ip_route.render_json(routes)
    else:
        config = state.running_config()
        text, data = {
            "isakmp-policy": (
                lambda: config_shows.render_isakmp_policy(config),
                lambda: config_shows.isakmp_policy_json(config),
            ),
            "ipsec-profile": (
                lambda: config_shows.render_ipsec_profiles(config),
                lambda: config_shows.ipsec_profile_json(config),
            ),
            "transform-set": (
                lambda: config_shows.render_transform_sets(config),
                lambda: config_shows.transform_set_json(config),
            ),
        }[cmd]
    return json.dumps(data(), indent=2) + "\n" if parsed.json else text()


def run_show(command: str, state: StateProvider, prompt: str = "") -> str:
    """Run one ``show crypto ...`` or ``show ip route`` command; bad input gives IOS's error text
    (never an exception)."""
    try:
        parsed = parse_show(command, prompt)
    except ShowSyntaxError as err:
        return err.text + "\n"
    return render(parsed, state)
