"""The ``dmvpn`` command. Each subcommand group lives in its own module and is
registered here; a bad argument is a one-line error from click, never a
traceback."""

from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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
