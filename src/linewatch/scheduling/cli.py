"""``linewatch schedule``: solve an instance file, replan a saved plan after an event. Registered on the main app
with one ``add_typer`` line; this module imports nothing from ``linewatch.cli`` at load (that would be a cycle)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from linewatch.console import out, user_errors
from linewatch.core.extras import require
from linewatch.core.options import with_params
from linewatch.scheduling.methods import SOLVERS, ReplanParams

schedule_app = typer.Typer(
    help="Job-shop scheduling: plans with CP-SAT or dispatching rules, and replanning after an event.",
    no_args_is_help=True,
)


def _human(plan, changes: dict | None = None) -> None:
    s = plan.summary()
    gap = "—" if s["gap"] is None else f"{100 * s['gap']:.2f}%"
    bound = "—" if s["bound"] is None else f"{s['bound']:g}"
    out.print(
        f"{escape(str(s['instance']))}: {s['objective']} {s['value']:g} (makespan {s['makespan']}, weighted tardiness "
        f"{s['weighted_tardiness']:g}), bound {bound}, gap {gap}, {s['status']} by {s['solver']} "
        f"in {s['wall_s']:.2f} s",
        highlight=False,
        soft_wrap=True,
    )
    if changes is not None:
        out.print(
            f"changes: {changes['moved_operations']} operations moved, {changes['shifted_operations']} shifted "
            f"(total {changes['total_shift']}, max {changes['max_shift']}), "
            f"{len(changes['interrupted'])} interrupted",
            highlight=False,
            soft_wrap=True,
        )
    inst = plan.instance
    rows: dict[int, list] = {}
    for a in sorted(plan.assignments, key=lambda a: a.start):
        rows.setdefault(a.machine, []).append(a)
    for m in sorted(rows):
        seq = " ".join(f"{inst.job_label(a.job)}/{a.index}@{a.start}-{a.end}" for a in rows[m])
        out.print(f"machine {escape(str(inst.machine_label(m)))}: {escape(str(seq))}", highlight=False, soft_wrap=True)


def _checked(plan) -> None:
    from linewatch.scheduling.plan import check_plan

    problems = check_plan(plan)
    if problems:  # a solver bug, not the user's: say so rather than print a broken plan
        raise RuntimeError(f"the computed plan is infeasible: {problems[0]}")


@schedule_app.command()
@user_errors
@with_params(SOLVERS, method_arg="solver")
def solve(
    instance: Annotated[Path, typer.Argument(help="instance file: JSPLIB/Taillard text or linewatch JSON")],
    solver: Annotated[str, typer.Option(help="cpsat or rules")] = "cpsat",
    json_out: Annotated[bool, typer.Option("--json", help="print the plan as JSON (the replan input)")] = False,
    out_path: Annotated[Path | None, typer.Option("--out", "-o", help="also save the plan here (JSON)")] = None,
    **params: Any,
) -> None:
    """Plan an instance; print objective, bound, gap and the plan."""
    require("scheduling", "linewatch schedule solve")
    from linewatch.scheduling.formats import load_instance
    from linewatch.scheduling.plan import save_plan

    entry = SOLVERS[solver]
    values = entry.params.validate(params)
    inst = load_instance(instance)
    plan = entry.load()(inst, **values)
    _checked(plan)
    if out_path is not None:
        save_plan(plan, out_path)
    if json_out:
        print(json.dumps(plan.to_json()))
    else:
        _human(plan)


def _replan_options(fn):
    """Options for ReplanParams, generated from its declaration (help, defaults and bounds stated once)."""
    from linewatch.core.registry import Registry

    one = Registry("replanning", what="replanner")
    one.add("repair", ReplanParams, "linewatch.scheduling.replan:replan", "repair then CP-SAT", "scheduling")
    return with_params(one)(fn)


@schedule_app.command()
@user_errors
@_replan_options
def replan(
    plan: Annotated[Path, typer.Argument(help="plan file written by `linewatch schedule solve --out/--json`")],
    event: Annotated[Path, typer.Argument(help="event JSON: machine_down, machine_up, rush_order, operation_delayed")],
    json_out: Annotated[bool, typer.Option("--json", help="print the replan (changes and plan) as JSON")] = False,
    out_path: Annotated[Path | None, typer.Option("--out", "-o", help="save the new plan here (JSON)")] = None,
    **params: Any,
) -> None:
    """Repair a plan after an event: started operations stay; report what changed."""
    require("scheduling", "linewatch schedule replan")
    from linewatch.scheduling.plan import load_plan, save_plan
    from linewatch.scheduling.replan import ChangeCost, load_event
    from linewatch.scheduling.replan import replan as do_replan

    values = ReplanParams.validate(params)
    old = load_plan(plan)
    ev = load_event(event, old.instance)
    r = do_replan(
        old,
        ev,
        time_limit=values["time_limit"],
        workers=values["workers"],
        cost=ChangeCost(values["per_move"], values["per_shift"]),
    )
    _checked(r.plan)
    if out_path is not None:
        save_plan(r.plan, out_path)
    if json_out:
        print(json.dumps(r.to_json()))
    else:
        out.print(
            f"first feasible: {r.first.value():g} by {r.first.solver} in {r.first_s:.3f} s; "
            f"replanned in {r.total_s:.2f} s",
            highlight=False,
        )
        _human(r.plan, r.changes.to_json())
