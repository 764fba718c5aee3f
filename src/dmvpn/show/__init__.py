"""``show crypto ...`` output the way IOS-XE prints it, and as JSON.

The router fills the view dataclasses of :mod:`dmvpn.show.views` (see
``dmvpn.node.show_adapter``); the renderers (:mod:`.ipsec_sa`,
:mod:`.isakmp_sa`, :mod:`.session`, :mod:`.config_shows`) are pure
functions of them; :func:`run_show` parses a command line and dispatches.
"""

from dmvpn.show.commands import StateProvider, parse_show, run_show

__all__ = ["StateProvider", "parse_show", "run_show"]
