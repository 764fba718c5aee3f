"""Shared helpers of the ``dmvpn analyze`` tests: where the seed and the
oracles are, and how to run the analysis on files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dmvpn.analyze.diagnosis import diagnose
from dmvpn.analyze.render import render_json
from dmvpn.analyze.report import Report, analyse_sides

ROOT = Path(__file__).resolve().parents[1]
#: ``../shared`` from the project root (a worktree sits one level deeper).
SHARED = next(p / "shared" for p in (ROOT.parent, ROOT.parent.parent) if (p / "shared").is_dir())
SEED = SHARED / "seed"
ORACLES = SHARED / "oracles" / "cli"


def inputs(**sides: list[Path]) -> dict[str, list[tuple[str, bytes]]]:
    return {name: [(str(p), p.read_bytes()) for p in paths] for name, paths in sides.items()}


def analyse(**sides: list[Path]) -> tuple[Report, dict[str, Any]]:
    report = analyse_sides(inputs(**sides))
    return report, render_json(report, diagnose(report))
