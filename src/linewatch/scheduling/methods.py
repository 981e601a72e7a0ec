"""The scheduling solvers and their parameters, declared once: the CLI options (and later the API's schemas) are
generated from these declarations. Light to import: no OR-Tools here."""

from __future__ import annotations

from linewatch.core.params import Param, Params
from linewatch.core.registry import Registry

OBJECTIVES = ("makespan", "tardiness", "weighted", "lexicographic")
RULE_NAMES = ("best", "spt", "lpt", "mwkr", "edd", "cr", "atc")


class ObjectiveParams(Params):
    objective: str = Param(
        "makespan",
        "what to minimise: makespan, tardiness (total weighted), weighted (a*makespan + b*tardiness) or lexicographic "
        "(tardiness, then makespan)",
        choices=OBJECTIVES,
    )
    makespan_weight: float = Param(1.0, "a: weight of the makespan in the weighted objective", ge=0)
    tardiness_weight: float = Param(1.0, "b: weight of the total weighted tardiness in the weighted objective", ge=0)


class CpsatParams(ObjectiveParams):
    time_limit: float = Param(10.0, "seconds the solver may run", gt=0, le=86400)
    workers: int = Param(2, "solver threads", ge=1, le=64)
    seed: int = Param(0, "solver random seed", ge=0, le=2**32 - 1)
    tabu_share: float = Param(
        0.5,
        "share of the time limit given to a tabu search warm start on plain job shops under makespan (needs numba; "
        "0 = CP-SAT alone)",
        ge=0,
        le=1,
    )


class RuleParams(ObjectiveParams):
    rule: str = Param("best", "dispatching rule, or best = each rule, keep the best plan", choices=RULE_NAMES)


class ReplanParams(Params):
    time_limit: float = Param(5.0, "seconds for the whole replan (first feasible repair + solver)", gt=0, le=86400)
    workers: int = Param(2, "solver threads", ge=1, le=64)
    per_move: float = Param(5.0, "cost of moving an operation to another machine, in objective units", ge=0)
    per_shift: float = Param(0.01, "cost per time unit an operation's start shifts, in objective units", ge=0)


SOLVERS = Registry("scheduling", what="solver")
SOLVERS.add(
    "cpsat",
    CpsatParams,
    "linewatch.scheduling.cpsat:solve_cpsat",
    "OR-Tools CP-SAT, warm-started from the best dispatching rule and, on plain job shops, a tabu search; reports a "
    "proven bound",
    "scheduling",
)
SOLVERS.add(
    "rules",
    RuleParams,
    "linewatch.scheduling.rules:solve_rules",
    "dispatching rules (SPT, LPT, MWKR, EDD, CR, ATC): a plan in milliseconds, no bound",
    "scheduling",
)
