"""The ``dmvpn`` command. Each subcommand group lives in its own module and is
registered here; a bad argument is a one-line error from click, never a
traceback."""

from __future__ import annotations

import sys
from typing import Any

import click

#: click >= 8.2 raises this for a group called with no arguments
_NO_ARGS_IS_HELP: tuple[type[click.UsageError], ...] = tuple(
    e for e in (getattr(click.exceptions, "NoArgsIsHelpError", None),) if e is not None)


class _OneLineErrors(click.Group):
    """Usage errors on one line (click prints usage, a hint and the error on
    three): ``Error: <what is wrong> (see 'dmvpn lab seed --help')``."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        if not kwargs.get("standalone_mode", True):
            return super().main(*args, **kwargs)
        try:
            rv = super().main(*args, **{**kwargs, "standalone_mode": False})
        except _NO_ARGS_IS_HELP as exc:  # bare "dmvpn": the help, as click prints it
            exc.show()
            sys.exit(exc.exit_code)
        except click.UsageError as exc:
            where = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
            click.echo(f"Error: {exc.format_message()}{where}", err=True)
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        sys.exit(rv if isinstance(rv, int) else 0)  # click's standalone mode exits too


@click.group(cls=_OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="dmvpn")
def main() -> None:
    """An IPsec DMVPN stack: IKEv1 + ESP + GRE + NHRP, IOS configs and output."""


# Subcommands: one module each, registered below (one import + add_command per module).

from dmvpn.cli.decode_cmd import decode_command  # noqa: E402

main.add_command(decode_command)

from dmvpn.cli.config_cmd import config  # noqa: E402

main.add_command(config)

from dmvpn.cli.analyze_cmd import analyze_command  # noqa: E402

main.add_command(analyze_command)

from dmvpn.cli.lab_cmd import lab  # noqa: E402

main.add_command(lab)

from dmvpn.cli.run_cmd import COMMANDS as RUN_COMMANDS  # noqa: E402

for _command in RUN_COMMANDS:
    main.add_command(_command)

from dmvpn.cli.netlab_cmd import netlab  # noqa: E402

main.add_command(netlab)
