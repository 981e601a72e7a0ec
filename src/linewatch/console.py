"""What every linewatch command shares: the consoles (stdout stays clean for --json), one-line errors with the
exit status a script can test, and Rich progress bars. The root CLI and each engine's sub-app import it from here."""

from __future__ import annotations

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


def user_errors(fn):
    """User errors: one line on stderr, exit 2. Anything else: one line, exit 1 (LINEWATCH_DEBUG=1: raise)."""

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
        except Exception as e:
            if os.environ.get("LINEWATCH_DEBUG"):
                raise
            err.print(
                f"[red]internal error:[/red] {type(e).__name__}: {escape(str(e))} (set LINEWATCH_DEBUG=1 for details)",
                highlight=False,
                soft_wrap=True,
            )
            raise typer.Exit(1) from None

    return wrapper


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
