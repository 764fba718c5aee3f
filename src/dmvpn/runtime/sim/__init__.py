"""The ``sim`` runtime: engines on simulated links in virtual time."""

from dmvpn.runtime.sim.links import ChannelStats, Link, LinkParams, Segment
from dmvpn.runtime.sim.pcap import PcapWriter
from dmvpn.runtime.sim.simulator import SimulationError, Simulator

__all__ = ["ChannelStats", "Link", "LinkParams", "PcapWriter", "Segment", "SimulationError", "Simulator"]
