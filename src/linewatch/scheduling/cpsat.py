"""The OR-Tools CP-SAT solver: one model built from the instance (the job-shop example's shape: an interval per
operation, optional intervals for the machine choice, one no-overlap per machine), warm-started from the best
dispatching rule, with the rule's plan returned whenever the solver finds nothing better in time.

Objectives: ``makespan``, ``tardiness`` (total weighted tardiness), ``weighted`` (a weighted sum of both) and
``lexicographic`` (tardiness first, then makespan among the plans with that tardiness). A replan adds the cost of
changing the previous plan (operations moved to another machine, start shifts) to whichever objective is chosen.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ortools.sat.python import cp_model

from linewatch.scheduling.methods import OBJECTIVES
from linewatch.scheduling.model import Instance, InstanceError
from linewatch.scheduling.plan import Assignment, Plan
from linewatch.scheduling.rules import best_rule
from linewatch.scheduling.tabu import applies, tabu_search, warm


@dataclass
class ChangeCost:
    """What changing ``previous`` costs in objective units: per operation moved to another machine and per time unit
    an operation's start shifts (the model scales everything by ``CHANGE_SCALE`` to keep integer coefficients)."""

    previous: Plan
    per_move: float = 5.0
    per_shift: float = 0.01


CHANGE_SCALE = 100


class _Incumbents(cp_model.CpSolverSolutionCallback):
    """Records when each better solution arrived (time to first feasible, time to best) and reports progress."""

    def __init__(self, t0: float, report: Callable[[float, float, float], None] | None):
        super().__init__()
        self.t0, self.report = t0, report
        self.history: list[tuple[float, float]] = []

    def on_solution_callback(self) -> None:
        t = time.perf_counter() - self.t0
        self.history.append((round(t, 3), self.ObjectiveValue()))
        if self.report:
            self.report(t, self.ObjectiveValue(), self.BestObjectiveBound())


class _Model:
    """The CP-SAT model of an instance, with ``fixed`` operations kept and the rest starting at ``now`` or later."""

    def __init__(self, inst: Instance, horizon: int, fixed: list[Assignment], now: int):
        self.inst = inst
        self.m = cp_model.CpModel()
        m = self.m
        fixed_by = {(a.job, a.index): a for a in fixed}
        self.fixed = fixed_by
        self.start: dict[tuple[int, int], cp_model.IntVar] = {}
        self.end: dict[tuple[int, int], cp_model.IntVar] = {}
        self.present: dict[tuple[int, int, int], cp_model.IntVar | int] = {}
        on_machine: list[list] = [[] for _ in range(inst.n_machines)]
        self.ops_on: list[list[tuple[int, int, int]]] = [[] for _ in range(inst.n_machines)]
        for j, job in enumerate(inst.jobs):
            prev_end = None
            for k, op in enumerate(job.operations):
                key = (j, k)
                if key in fixed_by:
                    a = fixed_by[key]
                    s = m.new_constant(a.start)
                    e = m.new_constant(a.end)
                    on_machine[a.machine].append(m.new_fixed_size_interval_var(a.start, a.end - a.start, f"f{j}_{k}"))
                    self.present[(j, k, a.machine)] = 1
                else:
                    lo = max(job.release, now)
                    s = m.new_int_var(lo, horizon, f"s{j}_{k}")
                    e = m.new_int_var(lo, horizon, f"e{j}_{k}")
                    if len(op.options) == 1:
                        o = op.options[0]
                        on_machine[o.machine].append(m.new_interval_var(s, o.duration, e, f"i{j}_{k}"))
                        self.present[(j, k, o.machine)] = 1
                        self.ops_on[o.machine].append((j, k, o.duration))
                    else:
                        lits = []
                        for o in op.options:
                            lit = m.new_bool_var(f"p{j}_{k}_{o.machine}")
                            lits.append(lit)
                            on_machine[o.machine].append(
                                m.new_optional_interval_var(s, o.duration, e, lit, f"i{j}_{k}_{o.machine}")
                            )
                            self.present[(j, k, o.machine)] = lit
                            self.ops_on[o.machine].append((j, k, o.duration))
                        m.add_exactly_one(lits)
                if prev_end is not None:
                    m.add(s >= prev_end)
                self.start[key], self.end[key] = s, e
                prev_end = e
        for w in inst.unavailable:
            end = horizon + 1 if w.end is None else w.end
            if end > w.start and w.start <= horizon:
                on_machine[w.machine].append(m.new_fixed_size_interval_var(w.start, end - w.start, "down"))
        for ivs in on_machine:
            if len(ivs) > 1:
                m.add_no_overlap(ivs)
        for mach, table in inst.setups.items():
            self._setups(mach, table, fixed)
        self.job_end = [self.end[(j, len(job.operations) - 1)] for j, job in enumerate(inst.jobs)]
        self.makespan = m.new_int_var(0, horizon, "makespan")
        m.add_max_equality(self.makespan, self.job_end)
        self.scale = 1 if all(float(j.weight).is_integer() for j in inst.jobs) else 1000
        terms = []
        for j, job in enumerate(inst.jobs):
            if job.due is not None and job.weight > 0:
                t = m.new_int_var(0, horizon, f"tardy{j}")
                m.add(t >= self.job_end[j] - job.due)
                terms.append(round(job.weight * self.scale) * t)
        self.tardiness = sum(terms) if terms else 0

    def _setups(self, mach: int, table: list[list[int]], fixed: list[Assignment]) -> None:
        """Sequence-dependent setups: a circuit through the machine's operations (node 0 = start/end)."""
        m = self.m
        nodes = [(j, k) for j, k, _ in self.ops_on[mach]]
        nodes += [(a.job, a.index) for a in fixed if a.machine == mach]
        arcs = []
        for i, (ja, ka) in enumerate(nodes, start=1):
            pres = self.present.get((ja, ka, mach), 1)
            arcs.append((0, i, m.new_bool_var("")))
            arcs.append((i, 0, m.new_bool_var("")))
            if not isinstance(pres, int):
                arcs.append((i, i, ~pres))
            for jb_i, (jb, kb) in enumerate(nodes, start=1):
                if jb_i == i:
                    continue
                lit = m.new_bool_var("")
                arcs.append((i, jb_i, lit))
                m.add(self.start[(jb, kb)] >= self.end[(ja, ka)] + table[ja][jb]).only_enforce_if(lit)
        if nodes:
            m.add_circuit(arcs)

    def objective(self, name: str, weights: tuple[float, float]):
        if name == "makespan":
            return self.makespan
        if name == "tardiness":
            return self.tardiness
        if name == "weighted":
            # both weights to hundredths; the tardiness terms already carry ``scale``
            return round(100 * weights[0] * self.scale) * self.makespan + round(100 * weights[1]) * self.tardiness
        raise ValueError(name)

    def change_cost(self, cost: ChangeCost, horizon: int):
        """Moves and start shifts of the not-fixed operations against the previous plan."""
        m = self.m
        terms: list = []
        moved: list = []
        per_move, per_shift = round(cost.per_move * CHANGE_SCALE), round(cost.per_shift * CHANGE_SCALE)
        for a in cost.previous.assignments:
            key = (a.job, a.index)
            if key in self.fixed or key not in self.start:
                continue
            pres = self.present.get((a.job, a.index, a.machine))
            if pres is None:  # its machine is no longer an option
                moved.append(1)
            elif not isinstance(pres, int):
                moved.append(1 - pres)
            if per_shift:
                d = m.new_int_var(0, horizon + abs(a.start), "")
                m.add_abs_equality(d, self.start[key] - a.start)
                terms.append(per_shift * d)
        if per_move:
            terms += [per_move * x for x in moved]
        return sum(terms) if terms else 0

    def hint(self, plan: Plan) -> None:
        self.m.clear_hints()
        for a in plan.assignments:
            key = (a.job, a.index)
            if key in self.fixed:
                continue
            self.m.add_hint(self.start[key], a.start)
            self.m.add_hint(self.end[key], a.end)
            for o in self.inst.jobs[a.job].operations[a.index].options:
                lit = self.present.get((a.job, a.index, o.machine))
                if lit is not None and not isinstance(lit, int):
                    self.m.add_hint(lit, o.machine == a.machine)

    def plan(self, solver: cp_model.CpSolver, base: Plan) -> list[Assignment]:
        out = []
        for (j, k), s in self.start.items():
            if (j, k) in self.fixed:
                out.append(self.fixed[(j, k)])
                continue
            mach = next(
                o.machine
                for o in self.inst.jobs[j].operations[k].options
                if _chosen(solver, self.present[(j, k, o.machine)])
            )
            out.append(Assignment(j, k, mach, solver.value(s), solver.value(self.end[(j, k)])))
        return out


def _chosen(solver: cp_model.CpSolver, lit) -> bool:
    """Whether a machine option is taken: a constant 1 (the only option) or a true presence literal."""
    return lit == 1 if isinstance(lit, int) else bool(solver.boolean_value(lit))


#: instances of at most this many operations get a short CP-SAT run first (PROBE_SHARE of the time, at most PROBE_MAX_S)
PROBE_OPERATIONS = 100
PROBE_SHARE, PROBE_MAX_S = 0.05, 0.5


def _params(time_limit: float, workers: int, seed: int, log: bool) -> cp_model.CpSolver:
    solver = cp_model.CpSolver()
    p = solver.parameters
    p.max_time_in_seconds = max(0.01, time_limit)
    p.num_workers = workers
    p.random_seed = seed
    p.log_search_progress = log
    # The stronger (edge-finding style) no-overlap propagation: on 2 workers it proves ft10 optimal in ~6 s where the
    # default settings leave the bound at ~820 after 20 s, and it finds ta01's optimum within 30 s.
    p.use_strong_propagation_in_disjunctive = True
    return solver


def solve_cpsat(
    inst: Instance,
    *,
    objective: str = "makespan",
    time_limit: float = 10.0,
    workers: int = 2,
    weights: tuple[float, float] | None = None,
    makespan_weight: float = 1.0,
    tardiness_weight: float = 1.0,
    seed: int = 0,
    tabu_share: float = 0.5,
    fixed: Iterable[Assignment] = (),
    now: int = 0,
    change: ChangeCost | None = None,
    start: Plan | None = None,
    log: bool = False,
    report: Callable[[float, float, float], None] | None = None,
) -> Plan:
    """The best plan CP-SAT finds in ``time_limit`` seconds (never worse than its hint: ``start``, or else the best
    dispatching rule's plan), with its proven bound and status (optimal when proven)."""
    if objective not in OBJECTIVES:
        raise InstanceError(f"unknown objective {objective!r}: choose one of {', '.join(OBJECTIVES)}")
    fixed = list(fixed)
    use_tabu = (
        tabu_share > 0
        and time_limit * tabu_share >= 0.2
        and applies(inst, objective=objective, fixed=fixed, now=now, change=change)
    )
    weights = weights or (makespan_weight, tardiness_weight)
    t0 = time.perf_counter()
    spent = 0.0  # by the probe below
    if use_tabu and inst.n_operations <= PROBE_OPERATIONS:
        # a small instance: CP-SAT alone often proves it optimal at once (ft06 in 0.03 s), where the tabu search would
        # spend its whole share looking for a plan below a bound that the optimum lies above
        probe = solve_cpsat(
            inst,
            objective=objective,
            time_limit=min(PROBE_SHARE * time_limit, PROBE_MAX_S),
            workers=workers,
            weights=weights,
            seed=seed,
            tabu_share=0,
            start=start,
            log=log,
            report=report,
        )
        if probe.status == "optimal":
            return probe
        spent = time.perf_counter() - t0
    if use_tabu:
        warm()  # compiles once per machine, outside the time limit
    t0 = time.perf_counter() - spent  # the probe's time counts (times, the limit, wall_s), a first compile does not
    if start is None:
        rule_plan, _ = best_rule(inst, objective, fixed=fixed, now=now, weights=weights)
    else:
        rule_plan = start
    incumbent = rule_plan
    tabu_meta, tabu_history = None, []
    if use_tabu:
        found = tabu_search(inst, rule_plan, time_limit=(time_limit - spent) * tabu_share, threads=workers, seed=seed)
        tabu_meta = {**found.meta, "makespan": found.makespan, "wall_s": round(found.wall_s, 3)}
        if report:
            report(time.perf_counter() - t0, found.makespan, found.meta["lower_bound"])
        if found.makespan < incumbent.makespan:
            incumbent = start = found
            tabu_history = [
                (round(found.meta["best_at_s"] + (time.perf_counter() - t0 - found.wall_s), 3), float(found.makespan))
            ]
    horizon = inst.horizon() + now
    if start is not None:
        horizon = max(horizon, start.makespan)
    tight = objective == "makespan" and change is None
    model = _Model(inst, incumbent.makespan if tight else max(horizon, incumbent.makespan), fixed, now)
    phases = ["tardiness", "makespan"] if objective == "lexicographic" else [objective]
    status_name, bound, history, best_plan = "feasible", None, list(tabu_history), incumbent
    for i, phase in enumerate(phases):
        remaining = time_limit - (time.perf_counter() - t0)
        if remaining <= 0.01:
            break
        goal = model.objective(phase, weights)
        total = CHANGE_SCALE * goal + model.change_cost(change, horizon) if change is not None else goal
        model.m.minimize(total)
        model.hint(best_plan)
        solver = _params(remaining if i == len(phases) - 1 else remaining / 2, workers, seed, log)
        cb = _Incumbents(t0, report)
        status = solver.solve(model.m, cb)
        history += cb.history
        if status in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            best_plan = Plan(inst, model.plan(solver, best_plan), objective=objective, now=now)
            status_name = "optimal" if status == cp_model.OPTIMAL else "feasible"
            if change is None and phase == objective:
                divisor = {"makespan": 1, "tardiness": model.scale, "weighted": 100 * model.scale}[phase]
                bound = solver.best_objective_bound / divisor
        elif status == cp_model.UNKNOWN and change is None and phase == objective == "makespan":
            # no better plan than the warm start in time; the bound still holds (and the loads bound the makespan too)
            bound = max(solver.best_objective_bound, tabu_meta["lower_bound"] if tabu_meta else 0)
        elif status == cp_model.INFEASIBLE:
            raise InstanceError("the instance has no feasible plan (the windows or fixed operations leave no room)")
        if len(phases) > 1 and i == 0:
            model.m.add(goal <= round(best_plan.weighted_tardiness * model.scale))
    best_plan.objective, best_plan.now, best_plan.weights = objective, now, weights
    best_plan.solver = "cpsat" if best_plan is not incumbent else incumbent.solver or "cpsat"
    if best_plan is not incumbent or status_name == "optimal":
        best_plan.status = status_name
    else:
        best_plan.status = "rule" if incumbent is rule_plan else "feasible"
    best_plan.bound = bound
    best_plan.wall_s = time.perf_counter() - t0
    best_plan.meta = {"incumbents": history, "rule": rule_plan.solver, "rule_value": rule_plan.value(objective)}
    if tabu_meta is not None:
        best_plan.meta["tabu"] = tabu_meta
    return best_plan
