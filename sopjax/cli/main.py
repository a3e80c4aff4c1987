"""Entry point of the ``sopjax`` command.

Each subcommand lives in its own module exposing ``register(subparsers)``, which
adds a parser whose ``run(args) -> int`` is stored as ``func``. Heavy imports
happen inside ``run`` so that ``sopjax --help`` stays fast. User errors
(:class:`~sopjax.errors.SopjaxError`, missing files) print one line and exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# subcommand modules, in the order --help lists them
COMMANDS = ("powerflow", "montecarlo", "bench", "plan", "allocate", "restore", "reconfigure", "sweep", "dataset", "train")


class _Parser(argparse.ArgumentParser):
    """An argument parser whose refusals are one line (``sopjax CMD: error: ...``), exit code 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="sopjax",
        description="Soft open point studies in distribution networks: power flow, Monte Carlo "
        "scoring, restoration, planning and differentiable dispatch.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS:
        importlib.import_module(f"sopjax.cli.{name}").register(sub)
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("sopjax")
    except PackageNotFoundError:
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    from sopjax.jax_config import configure_xla

    configure_xla()  # before any subcommand starts JAX (see sopjax.jax_config)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version (0) or a refused option (2, one line printed)
        return e.code if isinstance(e.code, int) else 2
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from sopjax.errors import SopjaxError

    try:
        return int(args.func(args) or 0)
    except SopjaxError as e:
        print(f"sopjax {args.command}: error: {e}", file=sys.stderr)
        return 2
    except (FileNotFoundError, IsADirectoryError, PermissionError) as e:
        print(f"sopjax {args.command}: error: {e.strerror}: {e.filename}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"sopjax {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (e.g. `| head`): stop quietly, as Unix tools do
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
