"""Tabu search for the classic job shop (makespan), compiled with numba: the warm start that lets CP-SAT finish large
instances near the best known plans on two cores.

The search moves in the N5 neighbourhood of Nowicki and Smutnicki (1996): on a critical path, swap the first two or
the last two operations of each block of consecutive operations on one machine. Such swaps never create a cycle, so
every neighbour is a feasible plan, and each is rated by the exact length of the longest path through the two
swapped operations (heads and tails of the current plan, as in Taillard 1994), a lower bound of its makespan that is
its makespan whenever the swap matters. Besides those swaps it moves an inner operation of a block to the block's
front or end (insertion moves, as in the N6 neighbourhood of Balas and Vazacopoulos, 1998), when their conditions
rule out a cycle; each is rated by the longest path through the operations it reorders. A swapped pair (each order an
insertion reverses) is tabu for a random number of iterations; a tabu move is still taken when it would beat the best
plan found (aspiration). When the search has not improved its best plan for ``RESTART_AFTER`` iterations it goes
back to that plan and perturbs it with a few random critical swaps.

Two searches with different seeds run at once (one per core; numba releases the GIL) and the better plan wins.
The search applies to plain job shops: one machine per operation, makespan, no setups, unavailability windows or
fixed operations (:func:`applies`); everything else goes to CP-SAT directly.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from linewatch.scheduling.model import Instance, Job, Operation, Option
from linewatch.scheduling.plan import Assignment, Plan

MAX_OPERATIONS = 4000  # the tabu matrix is n x n int32: 64 MB at this size

#: iterations without a better plan before the search goes back to its best plan and perturbs it (about a second of
#: one core on 500 operations). Measured at 30 s on 2 cores (docs/benchmarks.md, "Going back to the best plan"): far
#: better than going back every 2,000 iterations or never on swv11-swv13 (2,999 / 3,035 / 3,117 against 3,099 / 3,267 /
#: 3,308), better on 7 of 10 Taillard instances of 300-1,000 operations, equal on one and worse by 1 and 3 on two;
#: 50,000 and 1,000,000 land close to it.
RESTART_AFTER = 250_000
#: the moves the search weighs on each critical block (``MOVES`` names them; ``tabu_search(moves=...)`` picks one):
#: "n5", the swaps of a block's first two and last two operations (Nowicki and Smutnicki); "n6", besides them a
#: block's inner operations moved to its ends (Balas and Vazacopoulos' insertions); "n7", besides those the block's
#: first and last operations moved into it (Zhang et al.'s extension). Measured with the tabu search alone, 20 s on 2
#: cores (docs/benchmarks.md, "Insertion moves"): n6 better than n5 on 8 of 9 hard instances (Taillard 20-30 x 15-20,
#: swv07/09/12) and on 9 of ta11-ta20 at 10 s, though a quarter to a half fewer iterations fit in the time.
MOVES = ("n5", "n6", "n7")
NEIGHBOURHOOD = "n6"

try:  # numba is optional: without it the solvers skip the warm start
    import numba

    _njit = numba.njit(cache=True, nogil=True)
    HAVE_NUMBA = True
except ImportError:  # pragma: no cover - exercised where numba is missing
    HAVE_NUMBA = False

    def _njit(f):
        return f


def applies(inst: Instance, *, objective: str = "makespan", fixed=(), now: int = 0, change=None) -> bool:
    """Whether the tabu search can warm-start this problem (a plain job shop under makespan)."""
    return (
        HAVE_NUMBA
        and objective == "makespan"
        and change is None
        and not list(fixed)
        and now == 0
        and not inst.unavailable
        and not inst.setups
        and 2 <= inst.n_operations <= MAX_OPERATIONS
        and all(len(op.options) == 1 for job in inst.jobs for op in job.operations)
    )


@_njit
def _heads_tails(mach_next, mach_prev, job_next, job_prev, dur, release, heads, tails, order, indeg):
    """Heads (earliest starts) and tails of every operation in a topological order; the makespan (-1 on a cycle)."""
    n = dur.shape[0]
    top = 0
    for o in range(n):
        d = 0
        if job_prev[o] >= 0:
            d += 1
        if mach_prev[o] >= 0:
            d += 1
        indeg[o] = d
        if d == 0:
            order[top] = o
            top += 1
    head = 0
    while head < top:
        o = order[head]
        head += 1
        s = job_next[o]
        if s >= 0:
            indeg[s] -= 1
            if indeg[s] == 0:
                order[top] = s
                top += 1
        s = mach_next[o]
        if s >= 0:
            indeg[s] -= 1
            if indeg[s] == 0:
                order[top] = s
                top += 1
    if top < n:
        return -1
    for i in range(n):
        o = order[i]
        p = job_prev[o]
        a = release[o] if p < 0 else heads[p] + dur[p]
        p = mach_prev[o]
        if p >= 0 and heads[p] + dur[p] > a:
            a = heads[p] + dur[p]
        heads[o] = a
    cmax = 0
    for i in range(n - 1, -1, -1):
        o = order[i]
        b = 0
        s = job_next[o]
        if s >= 0:
            b = tails[s] + dur[s]
        s = mach_next[o]
        if s >= 0 and tails[s] + dur[s] > b:
            b = tails[s] + dur[s]
        tails[o] = b
        if heads[o] + dur[o] + b > cmax:
            cmax = heads[o] + dur[o] + b
    return cmax


@_njit
def _unlink(x, mach_next, mach_prev):
    """Take x out of its machine's order (its neighbours joined)."""
    a, b = mach_prev[x], mach_next[x]
    if a >= 0:
        mach_next[a] = b
    if b >= 0:
        mach_prev[b] = a


@_njit
def _link(x, a, b, mach_next, mach_prev):
    """Put x (unlinked) between a and b, adjacent on one machine (-1: the order's start or end)."""
    mach_prev[x], mach_next[x] = a, b
    if a >= 0:
        mach_next[a] = x
    if b >= 0:
        mach_prev[b] = x


@_njit
def _swap(u, v, mach_next, mach_prev):
    """Swap adjacent operations u -> v on their machine."""
    _unlink(u, mach_next, mach_prev)
    _link(u, v, mach_next[v], mach_next, mach_prev)


@_njit
def _estimate(u, v, mach_next, mach_prev, job_next, job_prev, dur, release, heads, tails):
    """The longest path through u and v after swapping u -> v (exact for the paths through them)."""
    pu = mach_prev[u]
    sv = mach_next[v]
    jp = job_prev[v]
    rv = release[v] if jp < 0 else heads[jp] + dur[jp]
    if pu >= 0 and heads[pu] + dur[pu] > rv:
        rv = heads[pu] + dur[pu]
    jp = job_prev[u]
    ru = release[u] if jp < 0 else heads[jp] + dur[jp]
    if rv + dur[v] > ru:
        ru = rv + dur[v]
    jn = job_next[u]
    qu = 0 if jn < 0 else tails[jn] + dur[jn]
    if sv >= 0 and tails[sv] + dur[sv] > qu:
        qu = tails[sv] + dur[sv]
    jn = job_next[v]
    qv = 0 if jn < 0 else tails[jn] + dur[jn]
    if qu + dur[u] > qv:
        qv = qu + dur[u]
    a = rv + dur[v] + qv
    b = ru + dur[u] + qu
    return a if a > b else b


@_njit
def _estimate_seq(seq, m, before, after, job_next, job_prev, dur, release, heads, tails):
    """The longest path through the operations ``seq[:m]``, in that new order on their machine between ``before`` and
    ``after`` (-1: none), from the heads and tails of the current plan (Balas and Vazacopoulos' estimate). Their new
    heads go to ``seq[m:2m]``."""
    end = 0 if before < 0 else heads[before] + dur[before]
    best = 0
    for i in range(m):
        x = seq[i]
        jp = job_prev[x]
        a = release[x] if jp < 0 else heads[jp] + dur[jp]
        if end > a:
            a = end
        seq[m + i] = a  # its new head, beside the order
        end = a + dur[x]
    nxt = 0 if after < 0 else tails[after] + dur[after]
    for i in range(m - 1, -1, -1):
        x = seq[i]
        jn = job_next[x]
        b = 0 if jn < 0 else tails[jn] + dur[jn]
        if nxt > b:
            b = nxt
        nxt = b + dur[x]
        v = seq[m + i] + dur[x] + b
        if v > best:
            best = v
    return best


@_njit
def _insertion(kind, u, v, mach_next, mach_prev, job_next, job_prev, dur, release, heads, tails, tabu, it, seq):
    """An insertion move (kind 1: u to right after v; kind 2: v to right before u; u before v on one machine):
    its estimate, or -1 when it could close a cycle (Balas and Vazacopoulos' conditions), and whether it is tabu
    (it would put back an order the search left within the tenure)."""
    if kind == 1:
        js = job_next[u]
        if js >= 0 and dur[v] + tails[v] < dur[js] + tails[js]:
            return -1, False
        m = 0
        x = mach_next[u]
        forbidden = False
        while True:
            seq[m] = x
            m += 1
            if tabu[u, x] > it:
                forbidden = True
            if x == v:
                break
            x = mach_next[x]
        seq[m] = u
        m += 1
    else:
        jp = job_prev[v]
        if jp >= 0 and heads[u] + dur[u] < heads[jp] + dur[jp]:
            return -1, False
        seq[0] = v
        m = 1
        x = u
        forbidden = False
        while x != v:
            seq[m] = x
            m += 1
            if tabu[x, v] > it:
                forbidden = True
            x = mach_next[x]
    val = _estimate_seq(seq, m, mach_prev[u], mach_next[v], job_next, job_prev, dur, release, heads, tails)
    return val, forbidden


@_njit
def _insert(kind, u, v, mach_next, mach_prev, tabu, until):
    """Apply an insertion move (see ``_insertion``) and make the orders it reverses tabu until ``until``."""
    if kind == 1:
        x = mach_next[u]
        while True:
            tabu[x, u] = until
            if x == v:
                break
            x = mach_next[x]
        _unlink(u, mach_next, mach_prev)
        _link(u, v, mach_next[v], mach_next, mach_prev)
    else:
        x = u
        while x != v:
            tabu[v, x] = until
            x = mach_next[x]
        _unlink(v, mach_next, mach_prev)
        _link(v, mach_prev[u], u, mach_next, mach_prev)


@_njit
def _critical_moves(cmax, mach_next, mach_prev, job_prev, dur, heads, tails, path, moves_u, moves_v, moves_k, level):
    """The N5 moves of one critical path (chosen at random among the operations that end the makespan), kind 0: swap
    u -> v. At ``level`` 1, also moves of a block's inner operations to its ends (kind 1: u moved to right after v, the
    block's last; kind 2: v moved to right before u, the block's first), as in the N6 neighbourhood; at level 2, also
    the block's first operation moved to right after an inner one and its last to right before one (N7). A block's
    first operation stays first in the path's first block, and its last stays last in the path's last block: such a
    move keeps the path's operations and cannot shorten it. At most 4 moves per operation of the path."""
    n = dur.shape[0]
    # an operation that ends at the makespan, picked at random among them
    count = 0
    last = -1
    for o in range(n):
        if heads[o] + dur[o] == cmax and tails[o] == 0:
            count += 1
            if np.random.randint(count) == 0:
                last = o
    length = 0
    o = last
    while o >= 0:
        path[length] = o
        length += 1
        mp = mach_prev[o]
        jp = job_prev[o]
        m_ok = mp >= 0 and heads[mp] + dur[mp] == heads[o]
        j_ok = jp >= 0 and heads[jp] + dur[jp] == heads[o]
        if m_ok and j_ok:
            o = mp if np.random.random() < 0.5 else jp
        elif m_ok:
            o = mp
        elif j_ok:
            o = jp
        else:
            o = -1
    # path[length-1] .. path[0] runs from the start to the end; collect blocks in that direction
    nm = 0
    i = length - 1
    first_block = True
    while i >= 0:
        j = i
        while j - 1 >= 0 and mach_next[path[j]] == path[j - 1]:
            j -= 1
        # block: path[i] (first) .. path[j] (last), size i - j + 1
        size = i - j + 1
        last_block = j == 0
        if size >= 2:
            if not first_block:
                moves_u[nm] = path[i]
                moves_v[nm] = path[i - 1]
                moves_k[nm] = 0
                nm += 1
            if not last_block and (size > 2 or first_block):
                moves_u[nm] = path[j + 1]
                moves_v[nm] = path[j]
                moves_k[nm] = 0
                nm += 1
            if level >= 1 and size >= 3:
                if not last_block:  # an operation before the last two, to the end of the block
                    for t in range(i, j + 1, -1):
                        moves_u[nm] = path[t]
                        moves_v[nm] = path[j]
                        moves_k[nm] = 1
                        nm += 1
                if not first_block:  # an operation after the first two, to the front of the block
                    for t in range(i - 2, j - 1, -1):
                        moves_u[nm] = path[i]
                        moves_v[nm] = path[t]
                        moves_k[nm] = 2
                        nm += 1
            if level >= 2 and size >= 4:
                if not first_block:  # the first operation to right after an inner one past the second
                    for t in range(i - 2, j, -1):
                        moves_u[nm] = path[i]
                        moves_v[nm] = path[t]
                        moves_k[nm] = 1
                        nm += 1
                if not last_block:  # the last operation to right before an inner one before the second last
                    for t in range(i - 1, j + 1, -1):
                        moves_u[nm] = path[t]
                        moves_v[nm] = path[j]
                        moves_k[nm] = 2
                        nm += 1
        first_block = False
        i = j - 1
    return nm


@_njit
def _search(
    mach_next,
    mach_prev,
    job_next,
    job_prev,
    dur,
    release,
    best_next,
    best_prev,
    best_cmax,
    tabu,
    iterations,
    it0,
    seed,
    tenure_lo,
    tenure_hi,
    stall_limit,
    lower_bound,
    stall,
    level,
):
    """``iterations`` tabu steps from the current plan (mach_next/mach_prev); the best plan is kept in best_*.
    ``stall`` iterations without improvement have passed before this call (the count carries across calls). Returns
    (best makespan, iteration counter, iterations since the last improvement, times it went back to the best plan)."""
    np.random.seed(seed)
    n = dur.shape[0]
    heads = np.zeros(n, np.int64)
    tails = np.zeros(n, np.int64)
    order = np.zeros(n, np.int64)
    indeg = np.zeros(n, np.int64)
    path = np.zeros(n, np.int64)
    moves_u = np.zeros(4 * n + 4, np.int64)
    moves_v = np.zeros(4 * n + 4, np.int64)
    moves_k = np.zeros(4 * n + 4, np.int64)
    seq = np.zeros(2 * n + 2, np.int64)
    saved_next = np.zeros(n, np.int64)
    saved_prev = np.zeros(n, np.int64)
    restarts = 0
    it = it0
    cmax = _heads_tails(mach_next, mach_prev, job_next, job_prev, dur, release, heads, tails, order, indeg)
    for _ in range(iterations):
        if best_cmax <= lower_bound:
            break
        it += 1
        nm = _critical_moves(
            cmax, mach_next, mach_prev, job_prev, dur, heads, tails, path, moves_u, moves_v, moves_k, level
        )
        if nm == 0:  # one block: the plan meets the machine's load, nothing on this path can be shortened
            stall = stall_limit
        else:
            pick = -1
            pick_val = 1 << 62
            ties = 0
            fallback = -1
            feasible = 0
            for k in range(nm):
                u = moves_u[k]
                v = moves_v[k]
                if moves_k[k] == 0:
                    val = _estimate(u, v, mach_next, mach_prev, job_next, job_prev, dur, release, heads, tails)
                    forbidden = tabu[u, v] > it
                else:
                    val, forbidden = _insertion(
                        moves_k[k], u, v, mach_next, mach_prev, job_next, job_prev, dur, release, heads, tails,
                        tabu, it, seq,
                    )
                    if val < 0:
                        continue
                feasible += 1
                if np.random.randint(feasible) == 0:
                    fallback = k
                allowed = not forbidden or val < best_cmax
                if not allowed:
                    continue
                if val < pick_val:
                    pick_val = val
                    pick = k
                    ties = 1
                elif val == pick_val:
                    ties += 1
                    if np.random.randint(ties) == 0:
                        pick = k
            if pick < 0:  # every move tabu: take one at random
                pick = fallback
            if pick < 0:  # pragma: no cover - a block with insertions has swaps too, which are always feasible
                stall = stall_limit
                continue
            u = moves_u[pick]
            v = moves_v[pick]
            until = it + tenure_lo + np.random.randint(tenure_hi - tenure_lo + 1)
            if moves_k[pick] == 0:
                _swap(u, v, mach_next, mach_prev)
                tabu[v, u] = until
            else:
                saved_next[:] = mach_next
                saved_prev[:] = mach_prev
                _insert(moves_k[pick], u, v, mach_next, mach_prev, tabu, until)
            cmax = _heads_tails(mach_next, mach_prev, job_next, job_prev, dur, release, heads, tails, order, indeg)
            if cmax < 0:  # pragma: no cover - the conditions above rule a cycle out; kept as a guard
                mach_next[:] = saved_next
                mach_prev[:] = saved_prev
                cmax = _heads_tails(mach_next, mach_prev, job_next, job_prev, dur, release, heads, tails, order, indeg)
            if cmax < best_cmax:
                best_cmax = cmax
                best_next[:] = mach_next
                best_prev[:] = mach_prev
                stall = 0
            else:
                stall += 1
        if stall >= stall_limit:
            # back to the best plan, perturbed by a few random critical swaps
            mach_next[:] = best_next
            mach_prev[:] = best_prev
            cmax = _heads_tails(mach_next, mach_prev, job_next, job_prev, dur, release, heads, tails, order, indeg)
            kicks = 2 + np.random.randint(4)
            for _k in range(kicks):
                nm = _critical_moves(
                    cmax, mach_next, mach_prev, job_prev, dur, heads, tails, path, moves_u, moves_v, moves_k, 0
                )
                if nm == 0:
                    break
                pick = np.random.randint(nm)
                _swap(moves_u[pick], moves_v[pick], mach_next, mach_prev)
                cmax = _heads_tails(mach_next, mach_prev, job_next, job_prev, dur, release, heads, tails, order, indeg)
            tabu[:, :] = 0
            it += 1
            stall = 0
            restarts += 1
    return best_cmax, it, stall, restarts


class _Problem:
    """The instance as flat arrays: operation o of job j at offset[j] + k."""

    def __init__(self, inst: Instance):
        self.inst = inst
        self.offset = np.cumsum([0] + [len(j.operations) for j in inst.jobs])
        n = int(self.offset[-1])
        self.n = n
        self.dur = np.zeros(n, np.int64)
        self.mach = np.zeros(n, np.int64)
        self.release = np.zeros(n, np.int64)
        self.job_next = np.full(n, -1, np.int64)
        self.job_prev = np.full(n, -1, np.int64)
        self.key: list[tuple[int, int]] = []
        for j, job in enumerate(inst.jobs):
            for k, op in enumerate(job.operations):
                o = int(self.offset[j]) + k
                self.dur[o] = op.options[0].duration
                self.mach[o] = op.options[0].machine
                self.key.append((j, k))
                if k == 0:
                    self.release[o] = job.release
                else:
                    self.job_prev[o] = o - 1
                    self.job_next[o - 1] = o

    def lower_bound(self) -> int:
        """Machine loads and job lengths (with releases): the plan cannot be shorter."""
        loads = np.bincount(self.mach, weights=self.dur, minlength=self.inst.n_machines)
        jobs = [job.release + sum(op.options[0].duration for op in job.operations) for job in self.inst.jobs]
        return int(max(loads.max(initial=0), max(jobs, default=0)))

    def links(self, plan: Plan) -> tuple[np.ndarray, np.ndarray]:
        """Machine successor/predecessor arrays of a plan (its order of operations on each machine)."""
        nxt = np.full(self.n, -1, np.int64)
        prv = np.full(self.n, -1, np.int64)
        per_machine: dict[int, list[tuple[int, int]]] = {}
        for a in plan.assignments:
            per_machine.setdefault(a.machine, []).append((a.start, int(self.offset[a.job]) + a.index))
        for ops in per_machine.values():
            ops.sort()
            for (_, a), (_, b) in zip(ops, ops[1:], strict=False):
                nxt[a], prv[b] = b, a
        return nxt, prv

    def plan(self, nxt: np.ndarray, prv: np.ndarray, like: Plan) -> Plan:
        """The semi-active plan (every operation as early as its predecessors allow) of a machine order."""
        n = self.n
        heads, tails = np.zeros(n, np.int64), np.zeros(n, np.int64)
        order, indeg = np.zeros(n, np.int64), np.zeros(n, np.int64)
        cmax = _heads_tails(nxt, prv, self.job_next, self.job_prev, self.dur, self.release, heads, tails, order, indeg)
        if cmax < 0:  # pragma: no cover - N5 swaps cannot create a cycle
            raise RuntimeError("the tabu search produced a cyclic machine order")
        out = [
            Assignment(j, k, int(self.mach[o]), int(heads[o]), int(heads[o] + self.dur[o]))
            for o, (j, k) in enumerate(self.key)
        ]
        return Plan(self.inst, out, objective=like.objective, solver="tabu", status="feasible", weights=like.weights)


_warm = False


def warm() -> None:
    """Compile the search once per process (numba caches the machine code on disk, so only the first use on a machine
    takes a few seconds); solvers call this before their clock starts, so the compile never eats a time limit."""
    global _warm
    if _warm or not HAVE_NUMBA:
        return
    inst = Instance([Job([Operation([Option(0, 2)]), Operation([Option(1, 1)])]),
                     Job([Operation([Option(1, 2)]), Operation([Option(0, 1)])])], 2)
    prob = _Problem(inst)
    a = [Assignment(0, 0, 0, 0, 2), Assignment(0, 1, 1, 2, 3), Assignment(1, 0, 1, 0, 2), Assignment(1, 1, 0, 2, 3)]
    nxt, prv = prob.links(Plan(inst, a))
    _run((prob, nxt, prv, time.perf_counter() + 0.01, 0, 0, RESTART_AFTER, MOVES.index(NEIGHBOURHOOD)))
    _warm = True


def _run(args) -> tuple[int, np.ndarray, np.ndarray, int, float, int]:
    prob, nxt, prv, deadline, seed, lower, stall_limit, level = args
    nxt, prv = nxt.copy(), prv.copy()
    best_next, best_prev = nxt.copy(), prv.copy()
    n = prob.n
    tabu = np.zeros((n, n), np.int32)
    n_jobs = len(prob.inst.jobs)
    lo = 8 + n_jobs // max(1, prob.inst.n_machines)
    hi = lo + max(4, n_jobs // 2)
    heads, tails = np.zeros(n, np.int64), np.zeros(n, np.int64)
    best = _heads_tails(nxt, prv, prob.job_next, prob.job_prev, prob.dur, prob.release, heads, tails,
                        np.zeros(n, np.int64), np.zeros(n, np.int64))
    it, chunk, iterations, best_at, stall, restarts = 0, 2000, 0, time.perf_counter(), 0, 0
    rng = np.random.default_rng(seed)
    # one chunk at least (a few ms once compiled): under load the first compile can use up a short limit alone
    while best > lower and (iterations == 0 or time.perf_counter() < deadline):
        before = best
        best, it, stall, back = _search(
            nxt, prv, prob.job_next, prob.job_prev, prob.dur, prob.release, best_next, best_prev, best, tabu,
            chunk, it, int(rng.integers(2**31 - 1)), lo, hi, stall_limit, lower, stall, level,
        )
        iterations += chunk
        restarts += back
        if best < before:
            best_at = time.perf_counter()
    return int(best), best_next, best_prev, iterations, best_at, restarts


def tabu_search(
    inst: Instance,
    start: Plan,
    *,
    time_limit: float,
    threads: int = 2,
    seed: int = 0,
    restart_after: int = RESTART_AFTER,
    moves: str | None = None,
) -> Plan:
    """Improve ``start`` (a feasible plan of a plain job shop) for ``time_limit`` seconds with ``threads`` searches of
    different seeds, each going back to its best plan after ``restart_after`` iterations without a better one; the
    best plan found (never worse than ``start``), with the iterations and those returns in ``meta``. ``moves``: the
    neighbourhood, one of ``MOVES`` (default ``NEIGHBOURHOOD``)."""
    t0 = time.perf_counter()
    prob = _Problem(inst)
    nxt, prv = prob.links(start)
    lower = prob.lower_bound()
    deadline = t0 + time_limit
    threads = max(1, threads)
    moves = NEIGHBOURHOOD if moves is None else moves
    if moves not in MOVES:
        raise ValueError(f"moves must be one of {', '.join(MOVES)}, not {moves!r}")
    level = MOVES.index(moves)
    jobs = [
        (prob, nxt, prv, deadline, seed * 1000 + i, lower, max(1, int(restart_after)), level) for i in range(threads)
    ]
    if threads == 1:
        results = [_run(jobs[0])]
    else:
        with ThreadPoolExecutor(threads) as pool:
            results = list(pool.map(_run, jobs))
    best, b_next, b_prev, _, best_at, _ = min(results, key=lambda r: (r[0], r[4]))
    plan = prob.plan(b_next, b_prev, start)
    if plan.makespan > start.makespan:  # pragma: no cover - the search keeps its start as the first best
        plan = start
    plan.wall_s = time.perf_counter() - t0
    plan.meta = {
        "iterations": sum(r[3] for r in results),
        "restarts": sum(r[5] for r in results),
        "threads": threads,
        "lower_bound": lower,
        "best_at_s": round(max(0.0, best_at - t0), 3),
    }
    return plan
