"""The IKEv2 lines of ``dmvpn config check``'s summary."""

from __future__ import annotations

from dmvpn.config.ikev2_model import Ikev2Config, Ikev2Proposal


def _proposal_text(p: Ikev2Proposal) -> str:
    encr = " ".join(e.ios_name for e in p.encryption) or "none"
    integ = " ".join(i.name for i in p.integrity) or "none"
    prf = " ".join(x.name for x in p.prf) or "none"
    groups = " ".join(str(int(g)) for g in p.groups) or "none"
    return f"encryption {encr}; integrity {integ}; prf {prf}; group {groups}"


def ikev2_summary_lines(c: Ikev2Config, mask: str) -> list[str]:
    """Proposals, policies, keyrings (keys masked) and profiles; sections
    IOS-XE's smart defaults supplied are marked ``(smart default)``; keys
    are shown as ``mask``."""
    out = []
    for p in c.proposals.values():
        flag = " (smart default)" if "proposal default" in c.defaulted and p.name == "default" else ""
        usable = "" if p.complete else " [incomplete]"
        out.append(f"  IKEv2 proposal {p.name}: {_proposal_text(p)}{flag}{usable}")
    for pol in c.policies.values():
        flag = " (smart default)" if "policy default" in c.defaulted and pol.name == "default" else ""
        match = "fvrf any" if pol.match_fvrf_any else "address local " + " ".join(map(str, pol.match_local))
        out.append(f"  IKEv2 policy {pol.name}: match {match}; proposals {', '.join(pol.proposals) or 'none'}{flag}")
    for k in c.keyrings.values():
        out.append(f"  IKEv2 keyring {k.name}:")
        out += [f"    peer {p.name}: {p.network}, pre-shared-key local {mask} remote {mask}" for p in k.peers]
    for pr in c.profiles.values():
        match = ", ".join(map(str, pr.match_remote)) or "nothing"
        dpd = f"dpd {pr.dpd.interval} s retry {pr.dpd.retry} s {pr.dpd.mode.value}" if pr.dpd else "dpd off"
        out.append(
            f"  IKEv2 profile {pr.name}: match remote {match}; authentication local {pr.auth_local} "
            f"remote {pr.auth_remote}; keyring {pr.keyring or 'none'}; {dpd}; lifetime {pr.lifetime} s"
        )
    return out
