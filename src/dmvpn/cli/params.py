"""Command-line parameter types shared by the commands."""

from __future__ import annotations

import click

from dmvpn.lab.scenario import MAX_DURATION


class Seconds(click.ParamType):  # type: ignore[type-arg]  # generic only in click's stubs of some versions
    """Virtual seconds: a finite number > 0, at most :data:`MAX_DURATION`
    (click's FloatRange lets NaN through: every comparison with it is false)."""

    name = "seconds"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> float:
        try:
            seconds = float(value)  # type: ignore[arg-type]  # click hands strings or floats; others fail below
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number of seconds", param, ctx)
        if not 0 < seconds <= MAX_DURATION:  # False for NaN too
            self.fail(f"{value!r} is not in the range 0 < seconds <= {MAX_DURATION:.0f}", param, ctx)
        return seconds
