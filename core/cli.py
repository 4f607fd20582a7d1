"""Command line: ``python -m core <command> ...``.

Each command lives in its own module exposing ``add_parser(subparsers)`` which
registers the sub-parser and sets ``func`` (returning an exit code). Errors a
user can cause (:class:`TaskAffinityError`) print one line and exit 2. Anything
else is a bug: one line naming the exception type and a log file holding the
traceback (``$TASKAFFINITY_LOG_DIR``, else ``~/.cache/taskaffinity/logs``), exit 1.
The line never carries the exception's text, which may quote the content of a file.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import importlib
import os
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Callable, Sequence

from core.devices import check_device
from core.errors import InvalidInputError, TaskAffinityError

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


LOG_ENV = "TASKAFFINITY_LOG_DIR"


def log_dir() -> Path:
    """Where unexpected errors are logged: ``$TASKAFFINITY_LOG_DIR``, else ``~/.cache/taskaffinity/logs``."""
    env = os.environ.get(LOG_ENV, "").strip()
    return Path(env).expanduser() if env else Path.home() / ".cache" / "taskaffinity" / "logs"


def write_crash_log(argv: Sequence[str] | None, exc: BaseException) -> Path | None:
    """Write the traceback of ``exc`` to a new file under :func:`log_dir` (or the temp folder); its path."""
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    text = (f"taskaffinity {stamp} pid {os.getpid()}\nargv: {list(sys.argv[:1]) + list(argv or sys.argv[1:])}\n\n"
            + "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
    for folder in (log_dir(), Path(tempfile.gettempdir()) / "taskaffinity-logs"):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"error-{stamp}-{os.getpid()}.log"
            # the traceback may quote inputs: readable by the user only
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8", errors="replace") as fh:
                fh.write(text)
            return path
        except OSError:
            continue
    return None


def progress_bar(enabled: bool, unit: str = "training") -> tuple[Callable[[int, int, str], None] | None,
                                                             Callable[[], None]]:
    """``(progress, close)`` for a run's ``progress(done, total, message)`` callback: a tqdm bar on stderr."""
    if not enabled:
        return None, lambda: None
    from tqdm.auto import tqdm  # only commands that train show a bar

    bar = tqdm(total=0, unit=unit, file=sys.stderr, dynamic_ncols=True, disable=None)

    def update(done: int, total: int, message: str) -> None:
        bar.total = total
        bar.n = done
        bar.set_postfix_str(message[:60], refresh=False)
        bar.refresh()

    return update, bar.close


def device_arg(text: str) -> str:
    """argparse type of ``--device``: the spelling checked up front, without importing torch."""
    try:
        return check_device(text, "--device")
    except InvalidInputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def one_line(message: str) -> str:
    """``message`` on one line (a path or name holding a line break must not start a second one)."""
    return " ".join(str(message).split())


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except TaskAffinityError as exc:
        print(f"error: {one_line(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; finished results are saved (use --resume to continue).", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head`: nothing more to say
        return 1
    except (Exception, RecursionError, MemoryError) as exc:  # a bug: one line here, the traceback in a file
        path = write_crash_log(argv, exc)
        where = f"details in {path}" if path else "no log could be written"
        print(f"error: unexpected {type(exc).__name__} (a bug in taskaffinity, not in your input; saved results are "
              f"kept); {where}. Please report it with that file.", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
