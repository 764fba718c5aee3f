"""The two routers' settings side by side: where the configs (or profile
shows) of two sides disagree on a profile both have, the Quick Mode
between them fails (transform, PFS) or rekeys on the shorter lifetime
(RFC 2409 section 5.5: the responder may answer with a shorter one)."""

from __future__ import annotations

from dataclasses import dataclass

from dmvpn.analyze.report import Side


@dataclass(frozen=True, slots=True)
class ProfileView:
    """What matters of one IPsec profile, from a config or a profile show."""

    name: str
    seconds: int | None
    kilobytes: int | None  # None: no volume limit
    pfs: str  # "N" or a group
    transforms: tuple[str, ...]
    source: str


def profiles(side: Side) -> dict[str, ProfileView]:
    out: dict[str, ProfileView] = {}
    for shown in side.settings.profiles:
        pfs = "N" if shown.pfs in ("", "N") else shown.pfs
        out[shown.name] = ProfileView(shown.name, shown.lifetime_s,
                                      None if shown.volume_disabled else shown.lifetime_kb, pfs,
                                      tuple(sorted(shown.transform_sets.values())),
                                      f"show crypto ipsec profile (line {shown.line})")
    for config in side.settings.configs:
        for name, p in config.ipsec_profiles.items():
            sets = tuple(sorted(config.transform_sets[t].ios_text
                                for t in p.transform_sets if t in config.transform_sets))
            out[name] = ProfileView(name, p.lifetime_seconds, p.lifetime_kilobytes,
                                    "N" if p.pfs_group is None else f"group{int(p.pfs_group)}",
                                    sets, config.source)
    return out


def differences(sides: list[Side]) -> list[str]:
    """One sentence per setting two sides set differently on a shared profile."""
    if len(sides) < 2:
        return []
    a, b = sides[0], sides[1]
    pa, pb = profiles(a), profiles(b)
    out = []
    for name in sorted(set(pa) & set(pb)):
        x, y = pa[name], pb[name]
        if x.pfs != y.pfs:
            out.append(f"PFS differs in profile {name}: {a.label} {x.pfs}, {b.label} {y.pfs}: a "
                       "responder with `set pfs` rejects a Quick Mode without that group, so the Quick "
                       "Modes the other router starts fail (a responder without `set pfs` accepts what "
                       "the initiator offers).")
        if x.transforms and y.transforms and x.transforms != y.transforms:
            out.append(f"transform sets differ in profile {name}: {a.label} {', '.join(x.transforms)}; "
                       f"{b.label} {', '.join(y.transforms)}: no common proposal, no Quick Mode.")
        if (x.seconds, x.kilobytes) != (y.seconds, y.kilobytes):
            out.append(f"lifetimes differ in profile {name}: {a.label} {x.seconds} s / {x.kilobytes} KB, "
                       f"{b.label} {y.seconds} s / {y.kilobytes} KB: the shorter one is used (IKEv1 takes "
                       "the lower proposal), so the router with the longer one rekeys on the other's.")
    return out
