"""``dmvpn analyze``: explain a network engineer's own IOS crypto output.

The input is text a user pastes: any mix of ``show crypto ...`` output,
``show dmvpn``, a running-config and ``debug crypto isakmp`` logs, from one
router or labelled as several. The steps, one module each:

* :mod:`~dmvpn.analyze.text`: bytes to numbered lines, the unreadable-line record;
* :mod:`~dmvpn.analyze.segment`: the commands in the text, by prompt line or shape;
* :mod:`~dmvpn.analyze.ipsec_sa`, :mod:`~dmvpn.analyze.settings`,
  :mod:`~dmvpn.analyze.tables`, :mod:`~dmvpn.analyze.debuglog`: one parser per kind;
* :mod:`~dmvpn.analyze.sa_pairs`: ages, volumes, rates and pairs from the SA table;
* :mod:`~dmvpn.analyze.quick_modes`: the Quick Modes both logs tell of;
* :mod:`~dmvpn.analyze.diagnosis`: what is happening, why, what to change;
* :mod:`~dmvpn.analyze.render`: the text and the JSON;
* :mod:`~dmvpn.analyze.replay`: the user's situation replayed in the lab.

:func:`~dmvpn.analyze.report.analyse_sides` is the entry point.
"""
