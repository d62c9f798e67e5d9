"""The commands that run the gateway locally with nothing to set up: `gateway sandbox`,
`gateway fakes`, and `gateway redis stop` for the embedded Redis of a data directory."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from service.errors import ConfigError

WEB_PORT = 8000  # as sandbox.sandbox's; repeated so that --help imports nothing heavy
FAKES_PORT = 8010


def register(sub: Any) -> None:
    """Add the commands to the `gateway` parser's subcommands."""
    p = sub.add_parser(
        "sandbox", help="run web, worker, clock and fake Stripe and PayPal APIs on this "
                        "machine until Ctrl-C, with seeded customers, tokens and curl lines",
        description="Start the fake Stripe and PayPal APIs, web, worker and clock on an "
                    "embedded Redis and SQLite in a fresh data directory, seed customers who "
                    "paid a few days ago, print the addresses, admin tokens and ready curl "
                    "lines, and run until Ctrl-C, which stops everything it started.")
    p.add_argument("--data-dir", type=Path, default=Path("var/sandbox"),
                   help="where the ledger, Redis, logs and merchants file go; emptied at start "
                        "(default: var/sandbox)")
    p.add_argument("--port", type=_port, default=WEB_PORT,
                   help=f"the gateway's port on 127.0.0.1 (default: {WEB_PORT})")
    p.add_argument("--fakes-port", type=_port, default=FAKES_PORT,
                   help=f"the fake providers' port on 127.0.0.1 (default: {FAKES_PORT})")
    p.set_defaults(func=cmd_sandbox)

    p = sub.add_parser("fakes", help="run the fake Stripe and PayPal APIs alone until Ctrl-C",
                       description="Serve the local fake of the Stripe and PayPal APIs the "
                                   "adapters, reports and backfill call, until Ctrl-C.")
    p.add_argument("--port", type=_port, default=FAKES_PORT,
                   help=f"port on 127.0.0.1 (default: {FAKES_PORT})")
    p.add_argument("--merchants-out", type=Path, default=None, metavar="FILE",
                   help="also write the seed merchants file pointed at the fakes here, for "
                        "GATEWAY_MERCHANTS_FILE")
    p.set_defaults(func=cmd_fakes)

    redis = sub.add_parser("redis", help="the embedded Redis (used when REDIS_URL is unset)"
                           ).add_subparsers(dest="redis", required=True)
    redis.add_parser("stop", help="stop the embedded Redis of GATEWAY_DATA_DIR now (it also "
                                  "stops by itself when the last process using it exits)"
                     ).set_defaults(func=cmd_redis_stop)


def _port(value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= 65535:
        raise argparse.ArgumentTypeError(f"{value!r} is not a port from 1 to 65535")
    return int(value)


def cmd_sandbox(args: argparse.Namespace) -> int:
    from sandbox.sandbox import run_sandbox

    return run_sandbox(args.data_dir, port=args.port, fakes_port=args.fakes_port)


def cmd_fakes(args: argparse.Namespace) -> int:
    from sandbox.sandbox import run_fakes

    return run_fakes(args.port, args.merchants_out)


def cmd_redis_stop(args: argparse.Namespace) -> int:
    from service.config import load_settings
    from service.embedded_redis import stop_embedded_redis

    settings = load_settings()
    if settings.redis_url:
        raise ConfigError("REDIS_URL is set: that Redis is not the embedded one; stop it "
                          "where it runs")
    if stop_embedded_redis(settings.data_dir):
        print(f"stopped the embedded Redis of {settings.data_dir}")
    else:
        print(f"no embedded Redis runs for {settings.data_dir}")
    return 0
