"""The NHRP cache of one interface (RFC 2332 5.2: "next hop resolution
cache"): overlay prefix -> next hop -> NBMA address, with IOS's entry types
and flags (NHRP.md 3.8). Every state change goes through
:func:`dmvpn.nhrp.states.next_entry_state`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

from dmvpn.nhrp.states import EntryEvent, EntryState, next_entry_state

#: How long a failed resolution blocks a new one (IOS example: ~3 min;
#: NHRP.md 6.1 [UNVERIFIED]).
NEGATIVE_HOLD = 180.0


@dataclass(slots=True)
class CacheEntry:
    """One ``show ip nhrp`` entry. ``nbma`` is the NBMA address the peer
    claims; ``nbma_seen`` the post-NAT address packets arrive from (IOS shows
    both when they differ)."""

    prefix: IPv4Network
    next_hop: IPv4Address
    nbma: IPv4Address | None
    state: EntryState
    created: float
    expires: float | None
    nbma_seen: IPv4Address | None = None
    unique: bool = False
    used: bool = False
    implicit: bool = False
    router: bool = False
    nat: bool = False
    route: bool = False  # an NHRP route (H / "rib") was installed for it
    override: bool = False  # a next-hop override ("nho") was installed
    refresh_at: float | None = None
    target: IPv4Address | None = None  # what was resolved (re-resolved on refresh)

    @property
    def peer_nbma(self) -> IPv4Address | None:
        """The NBMA address to send to (post-NAT when known)."""
        return self.nbma_seen or self.nbma

    @property
    def entry_type(self) -> str:
        """IOS's Type: static, dynamic or incomplete."""
        if self.state is EntryState.STATIC:
            return "static"
        if self.state in (EntryState.INCOMPLETE, EntryState.NEGATIVE):
            return "incomplete"
        return "dynamic"

    def flags(self) -> list[str]:
        """IOS's Flags words, in IOS's order (NHRP.md 3.8)."""
        words = [
            ("router", self.router),
            ("implicit", self.implicit),
            ("unique", self.unique),
            ("registered", self.state is EntryState.REGISTERED),
            ("used", self.used),
            ("nat", self.nat),
            ("rib", self.route),
            ("nho", self.override),
            ("negative", self.state in (EntryState.INCOMPLETE, EntryState.NEGATIVE)),
            ("nhop", self.prefix.prefixlen == 32 and self.state is not EntryState.STATIC and not self.implicit),
        ]
        return [w for w, on in words if on]


class NhrpCache:
    """Entries keyed by prefix (host entries are /32)."""

    def __init__(self) -> None:
        self._entries: dict[IPv4Network, CacheEntry] = {}
        self._lengths: Counter[int] = Counter()  # prefix lengths present, for covering()

    def __iter__(self) -> Iterator[CacheEntry]:
        return iter(sorted(self._entries.values(), key=lambda e: (int(e.prefix.network_address), e.prefix.prefixlen)))

    def entries(self) -> list[CacheEntry]:
        """Every entry, unordered (a copy: callers may remove while iterating)."""
        return list(self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, prefix: IPv4Network) -> CacheEntry | None:
        """The entry for exactly ``prefix``."""
        return self._entries.get(prefix)

    def host(self, address: IPv4Address) -> CacheEntry | None:
        """The /32 entry for ``address``."""
        return self._entries.get(IPv4Network(address))

    def covering(self, address: IPv4Address) -> CacheEntry | None:
        """The longest entry whose prefix contains ``address``."""
        for length in sorted(self._lengths, reverse=True):
            entry = self._entries.get(IPv4Network((address, length), strict=False))
            if entry is not None:
                return entry
        return None

    def create(self, entry: CacheEntry, event: EntryEvent) -> CacheEntry:
        """Add ``entry`` (its state is set from GONE by ``event``)."""
        entry.state = next_entry_state(EntryState.GONE, event) if entry.state is not EntryState.STATIC else entry.state
        if entry.prefix not in self._entries:
            self._lengths[entry.prefix.prefixlen] += 1
        self._entries[entry.prefix] = entry
        return entry

    @staticmethod
    def move(entry: CacheEntry, event: EntryEvent) -> None:
        """Apply ``event`` to ``entry`` through the transition table."""
        entry.state = next_entry_state(entry.state, event)

    def remove(self, entry: CacheEntry, event: EntryEvent) -> None:
        """Apply a terminal ``event`` and drop the entry if it is gone."""
        self.move(entry, event)
        if entry.state is EntryState.GONE:
            del self._entries[entry.prefix]
            self._lengths[entry.prefix.prefixlen] -= 1
            if not self._lengths[entry.prefix.prefixlen]:
                del self._lengths[entry.prefix.prefixlen]

    def deadlines(self) -> Iterator[float]:
        """Every moment some entry wants attention (expiry or refresh)."""
        for entry in self._entries.values():
            if entry.expires is not None:
                yield entry.expires
            if entry.refresh_at is not None:
                yield entry.refresh_at
