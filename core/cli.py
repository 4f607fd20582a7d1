"""Command line: ``python -m core <command> ...``.

Each command lives in its own module exposing ``add_parser(subparsers)`` which
registers the sub-parser and sets ``func`` (returning an exit code). Errors a
user can cause (:class:`TaskAffinityError`) print one line and exit 2.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from core.errors import TaskAffinityError

# Modules that define commands; a missing one (not yet built) is skipped.
COMMAND_MODULES = (
    "core.grouping.cli",
    "core.estimation.cli",
    "core.evaluation.validation.cli",
    "core.estimation.external.cli",
)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, as for other bad input
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m core", description="taskaffinity: task affinity estimation and task grouping.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and (name == exc.name or name.startswith(exc.name + ".")):
                continue
            raise
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except TaskAffinityError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; finished results are saved (use --resume to continue).", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
