"""The command line's one error convention.

A user error (an argument that makes no sense, a file that is not there, a directory that cannot
be written, a ledger that was never created, an unknown merchant) is one line on standard
error, ``gateway: <what was wrong>``, and exit status 2. Status 0 is success, and 1 means a
command found what it looks for, where its help says so (discrepancies in a reconciliation).
Commands raise CliError, or let one of our own errors (service.errors) through;
``cli.main.run`` reports either here, once. Nothing a person typed wrong ends in a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from service.errors import GatewayError

USAGE = 2  # the exit status of every user error, as argparse's own


class CliError(GatewayError):
    """What the user asked for cannot be done; the message says why, in words they can act on."""


def report(exc: BaseException) -> int:
    """Print ``exc`` as the one line ``gateway: <message>`` on standard error; return 2."""
    message = " ".join(str(exc).split()) or type(exc).__name__  # one line, whatever it holds
    print(f"gateway: {message}", file=sys.stderr)
    return USAGE


def command_parser(parser: argparse.ArgumentParser, argv: Sequence[str]
                   ) -> argparse.ArgumentParser:
    """The parser of the (sub)command ``argv`` names, following its words down the tree."""
    current = parser
    for word in argv:
        subcommands = next((a for a in current._actions  # argparse keeps them only here
                            if isinstance(a, argparse._SubParsersAction)), None)
        if subcommands is None:
            break
        if word in subcommands.choices:
            current = subcommands.choices[word]
    return current


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line naming the command and where its help is (the
    subcommands' parsers are made of this class too)."""

    def error(self, message: str) -> NoReturn:
        command = self.prog.removeprefix("gateway").strip()
        where = f"{command}: " if command else ""
        self.exit(USAGE, f"gateway: {where}{message} (see `{self.prog} --help`)\n")
