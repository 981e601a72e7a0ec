"""What every linewatch command shares: the consoles (stdout stays clean for --json), one-line errors with the
exit status a script can test, and Rich progress bars. The root CLI and each engine's sub-app import it from here."""

from __future__ import annotations

import errno
import functools
import os

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from linewatch.errors import LinewatchError

err = Console(stderr=True)
out = Console()

STAGES = {
    "index": "indexing inspections",
    "embed": "embedding",
    "features": "extracting features",
    "coreset": "selecting memory bank",
    "calibrate": "calibrating threshold",
    "self-check": "self-check",
    "score": "scoring",
}


def path_problem(e: OSError) -> str | None:
    """What is wrong with the path an OSError names, in a user's words (a file where a folder must be, no
    permission, a full disk), or None for an error that names no path (that one is not the user's to fix)."""
    path = e.filename
    if path is None:
        return None
    why = {
        errno.EEXIST: "a file is in the way (a folder is needed there)",
        errno.ENOTDIR: "a file is in the way (part of the path must be a folder)",
        errno.EISDIR: "it is a folder (a file name is needed)",
        errno.EACCES: "permission denied",
        errno.EPERM: "permission denied",
        errno.EROFS: "the file system is read-only",
        errno.ENOSPC: "no space left on the device",
        errno.ENAMETOOLONG: "the name is too long",
    }.get(e.errno, e.strerror or type(e).__name__)
    return f"cannot use {os.fsdecode(path)}: {why}"


def user_errors(fn):
    """User errors: one line on stderr, exit 2 (also a path the command cannot write or read: a file in the way of
    a folder, no permission, a full disk). Anything else: one line, exit 1 (LINEWATCH_DEBUG=1: raise)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except LinewatchError as e:
            err.print(f"[red]error:[/red] {escape(str(e))}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            err.print("interrupted")
            raise typer.Exit(130) from None
        except (typer.Exit, typer.Abort):
            raise
        except MemoryError:
            err.print("[red]error:[/red] out of memory: use a smaller --image-size or --batch-size")
            raise typer.Exit(2) from None
        except OSError as e:
            problem = path_problem(e)
            if problem is None or os.environ.get("LINEWATCH_DEBUG"):
                _internal(e)
            err.print(f"[red]error:[/red] {escape(problem)}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except Exception as e:
            _internal(e)

    return wrapper


def _internal(e: Exception):
    """An error that is not the user's: one line and exit 1, or with LINEWATCH_DEBUG=1 the traceback."""
    if os.environ.get("LINEWATCH_DEBUG"):
        raise e
    err.print(
        f"[red]internal error:[/red] {type(e).__name__}: {escape(str(e))} (set LINEWATCH_DEBUG=1 for details)",
        highlight=False,
        soft_wrap=True,
    )
    raise typer.Exit(1) from None


class Bars:
    """Rich progress bars, one per stage, on stderr (stdout stays clean for --json)."""

    def __init__(self, quiet: bool = False):
        self.progress = Progress(
            TextColumn("{task.description:<24}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err,
            transient=False,
            disable=quiet,
        )
        self.tasks: dict[str, int] = {}

    def __enter__(self):
        self.progress.__enter__()
        return self

    def __exit__(self, *a):
        self.progress.__exit__(*a)

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage not in self.tasks:
            self.tasks[stage] = self.progress.add_task(STAGES.get(stage, stage), total=total)
        self.progress.update(self.tasks[stage], completed=done, total=total)
