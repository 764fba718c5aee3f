"""IPsec SAs and the ESP data plane.

* :mod:`.sa` - one SA (keys, counters, lifetimes, state, provenance, conn id);
* :mod:`.sad` - the SA database: install, lookup by SPI and by peer/selector,
  lifetime deadlines and events, fluid credits;
* :mod:`.events` - SoftExpired / HardExpired, consumed by the IKE engine;
* :mod:`.replay_window` - RFC 4303 anti-replay window with ESN inference;
* :mod:`.esp` - RFC 4303 encapsulation/decapsulation, transport and tunnel mode.
"""
