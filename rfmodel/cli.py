"""Optimal learning-rate schedules for power-law random-feature models.

commands:
  rfmodel optimize   optimal schedule vs every tuned baseline (the main job)
  rfmodel simulate   exact recursion vs Monte-Carlo SGD, figure and numbers
  rfmodel figures    regenerate every figure in figures/ from saved results
  rfmodel fit        fit the model to your logged loss curves (phase, a, b, scales)
  rfmodel pilot      the pilot runs to train before a long run
  rfmodel advise     the schedule to run for T steps, chosen with the model fitted to the pilots

Every flag is checked before any work starts; a bad value exits with status 2 and a message
naming the flag and its valid range. SIGINT (Ctrl-C) or SIGTERM ends a command within 2 s at any
moment (status 130 or 143, a one-line message, no traceback; a second signal ends it at once),
keeping every result already saved; rerunning resumes.

The command line is a thin layer: each command parses its flags, makes one library call
(rfmodel.control.compare.solve_and_compare, rfmodel.simulate.sgd, rfmodel.figures.regenerate,
rfmodel.practice.fit_curves, rfmodel.practice.plan_pilots, rfmodel.practice.advise_runs) and
prints what it returns.
"""

from __future__ import annotations

import argparse
import math
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .compile_cache import enable_compilation_cache
from .results import writable_dir
from .runner import run_stoppable

__all__ = ["main", "build_parser"]

# ----------------------------------------------------------------------------- flag types
# One parser per kind of flag. Each raises argparse.ArgumentTypeError, which argparse turns into
# "rfmodel <cmd>: error: argument --flag: <message>" and exit status 2.


def _range_text(lo: float, hi: float, lo_open: bool, hi_open: bool) -> str:
    if math.isinf(hi):
        return f"> {lo:g}" if lo_open else f">= {lo:g}"
    return f"in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"


def int_flag(lo: int, hi: int | None = None) -> Callable[[str], int]:
    """An integer in [lo, hi]; accepts integral float spellings such as ``1e6``."""
    rng = f"in [{lo}, {hi:.4g}]" if hi is not None else f">= {lo}"

    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            try:
                f = float(text)
            except ValueError:
                f = math.nan
            if not (math.isfinite(f) and f.is_integer()):
                raise argparse.ArgumentTypeError(
                    f"must be an integer {rng}; got {text!r}"
                ) from None
            v = int(f)
        if v < lo or (hi is not None and v > hi):
            raise argparse.ArgumentTypeError(f"must be an integer {rng}; got {text}")
        return v

    return parse


def float_flag(
    lo: float = -math.inf, hi: float = math.inf, *, lo_open: bool = False, hi_open: bool = False
) -> Callable[[str], float]:
    """A finite number in the range [lo, hi] (ends open or closed)."""
    rng = _range_text(lo, hi, lo_open, hi_open)

    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            v = math.nan
        ok = (
            math.isfinite(v)
            and (v > lo if lo_open else v >= lo)
            and (v < hi if hi_open else v <= hi)
        )
        if not ok:
            raise argparse.ArgumentTypeError(f"must be a finite number {rng}; got {text!r}")
        return v

    return parse


def kappa_flag(text: str) -> float | str:
    """``fit`` or a finite number > 0 (the fit's gradient-noise multiplier κ)."""
    if text.strip().lower() == "fit":
        return "fit"
    try:
        return float_flag(0, math.inf, lo_open=True)(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"must be 'fit' or a finite number > 0; got {text!r}"
        ) from None


def names_flag(known: list[str], *, all_: list[str] | None = None) -> Callable[[str], list[str]]:
    """A comma-separated list of names from ``known`` (``all``: the list ``all_``); a name given
    twice counts once."""

    def parse(text: str) -> list[str]:
        if all_ is not None and text == "all":
            return list(all_)
        names = list(dict.fromkeys(t.strip() for t in text.split(",") if t.strip()))
        unknown = [n for n in names if n not in known]
        if unknown or not names:
            raise argparse.ArgumentTypeError(
                f"must be {'all or ' if all_ is not None else ''}comma-separated names from "
                f"{', '.join(known)}; got {text!r}"
            )
        return names

    return parse


def path_flag(text: str) -> Path:
    """A file or folder name; an empty one is refused (``Path("")`` is the current folder)."""
    if not text:
        raise argparse.ArgumentTypeError("must be a name; got '' (the current folder is '.')")
    return Path(text)


class _Given(argparse.Action):
    """Store the value and record that the flag was given on the command line (``args.given``),
    for the checks of flags that conflict only when both are given explicitly."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, values)
        namespace.given = frozenset(getattr(namespace, "given", frozenset()) | {self.dest})


# ----------------------------------------------------------------------------- shared flags
T_MAX = 10**8
#: Largest sample budget S: the integer batches (cumulative rounding) are counted exactly in
#: float64 and int64 up to 2^53.
SAMPLES_MAX = float(2**53)
_DFLT = " (default %(default)s)"


def _common_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--quiet",
        action="store_true",
        help="no progress bars or status lines; the result and errors are still printed",
    )


def _rate_flag(p: argparse.ArgumentParser, flag: str, help: str) -> None:
    """An optional learning-rate flag > 0 (default None: the command chooses it)."""
    p.add_argument(flag, type=float_flag(0, lo_open=True), default=None, help=help)


def _problem_args(
    p: argparse.ArgumentParser, *, a=2.5, b=1.2, sigma=0.5, batch=4, T=1000, n_modes=1000
) -> None:
    from .problem import N_MAX, SIGMA_MAX

    flags = [
        ("--a", float_flag(1, lo_open=True), a, "target exponent a > 1: target power "
         "λ_k w*_k² = k^-a"),
        ("--b", float_flag(1, lo_open=True), b, "spectral exponent b > 1: eigenvalues "
         "λ_k = k^-b (b < a: easy phase, b > a: hard phase; b·log10(N) <= 300 so that λ_N is a "
         "float64 number)"),
        ("--sigma", float_flag(0, SIGMA_MAX), sigma, "label-noise standard deviation σ in "
         f"[0, {SIGMA_MAX:g}]"),
        ("--batch", int_flag(1, 10**9), batch, "minibatch size m in [1, 1e9]"),
        ("--T", int_flag(1, T_MAX), T, f"number of SGD steps in [1, {T_MAX:.0e}]"),
        ("--n-modes", int_flag(1, N_MAX), n_modes, f"number of modes N in [1, {N_MAX:.0e}] "
         "(beyond 1000 the tail is binned, so large N is cheap)"),
    ]  # fmt: skip
    for flag, kind, default, text in flags:
        p.add_argument(flag, type=kind, default=default, help=text + _DFLT, action=_Given)
    p.set_defaults(given=frozenset())
    p.add_argument(
        "--out",
        type=path_flag,
        default=None,
        help="output folder (default: runs/<command>_<phase>_a.._b.._T.._<key>, the key a hash "
        "of every flag that changes the result, so runs never overwrite each other); checked "
        "writable before any work",
    )
    _common_args(p)


def _theory_lines(problem) -> list[str]:
    th = problem.theory()
    lines = [
        f"phase: {th.phase} (a={problem.a:g}, b={problem.b:g})",
        f"predicted: optimal loss L*(T) ~ T^-{th.optimal_loss:.3f}, "
        f"best constant rate loss ~ T^-{th.constant_loss:.3f}, peak rate ~ T^-{th.xi:.3f}",
    ]
    if th.delta is not None:
        lines[-1] += f", annealing shape (1-t/T)^{th.delta:.2f}"
    lines.append(
        f"stability: largest stable constant rate eta_c = {problem.eta_critical():.4g}, "
        f"per-step bound = {problem.eta_mode_bound():.4g}"
    )
    return lines


def _run_dir(command: str, problem, args: argparse.Namespace, config: dict[str, Any]) -> Path:
    """``--out``, or ``runs/<command>_<phase>_a<a>_b<b>_T<T>_<key of the full configuration>``."""
    from .results import config_key

    if args.out is not None:
        return args.out
    name = f"{command}_{problem.phase}_a{args.a:g}_b{args.b:g}_T{args.T}_{config_key(config)}"
    return Path("runs") / name


def _say(args: argparse.Namespace) -> Callable[[str], None]:
    return (lambda s: None) if args.quiet else print


# ----------------------------------------------------------------------------- optimize
def _controls_arg(args: argparse.Namespace) -> int | None | str:
    """--per-step / --controls 0 → None (per step); --controls K → K; default "auto"."""
    if args.per_step and args.controls not in (None, 0):
        raise ValueError(
            f"--per-step and --controls {args.controls} conflict: --per-step is one control "
            "per step (--controls 0); give one of them"
        )
    if args.per_step or args.controls == 0:
        return None
    if args.controls is None:
        return "auto"
    if args.controls > args.T:
        raise ValueError(f"--controls must be an integer in [0, T={args.T}]; got {args.controls}")
    return args.controls


def _joint_args(args: argparse.Namespace) -> dict[str, Any]:
    """The controls named by --optimize and their flags, checked with the flags' names."""
    names = {"eta", *args.optimize}
    if "batch" not in names:
        given = [f for f in ("samples", "batch_min", "batch_max") if getattr(args, f) is not None]
        if given:
            flag = "--" + given[0].replace("_", "-")
            raise ValueError(f"{flag} needs --optimize batch (it sets the batch control)")
    if "momentum" not in names and args.beta_max is not None:
        raise ValueError("--beta-max needs --optimize momentum (it bounds the momentum control)")
    if "batch" in names:
        if args.samples is not None and "batch" in args.given:
            raise ValueError(
                f"--batch {args.batch} and --samples {args.samples:g} conflict with --optimize "
                "batch: the budget S sets the batch (the reference schedules run at the "
                "constant batch S/T, and --batch only sets the default S = T·batch); give one"
            )
        if args.samples is None and args.T * args.batch > SAMPLES_MAX:
            raise ValueError(
                f"--T {args.T} × --batch {args.batch} = {args.T * args.batch:.4g} samples, more "
                f"than 2^53 = {SAMPLES_MAX:.4g} (integer batches are counted exactly up to "
                "there): lower --batch or pass --samples"
            )
    out: dict[str, Any] = {"optimize": tuple(sorted(names))}
    if "batch" in names:
        out.update(samples=args.samples, batch_min=args.batch_min, batch_max=args.batch_max)
    if "momentum" in names:
        out["beta_max"] = args.beta_max
    return out


def _print_at_fractions(columns: list[tuple[str, int, np.ndarray]]) -> None:
    """A table of per-step schedules at t/T = 0 … 1: one (label, width, values) per column."""
    T = len(columns[0][2])
    print("\n" + f"{'t/T':>6s}" + "".join(f" {label:>{w}s}" for label, w, _ in columns))
    for f in (0.0, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 1.0):
        t = int(round(f * (T - 1)))
        print(f"{f:6.2f}" + "".join(f" {v[t]:{w}.4g}" for _, w, v in columns))


def _print_reports(comp) -> None:
    """η(t) with m(t) and what integer batches cost; η(t) with β(t) and the gain over SGD."""
    opt, x = comp.optimal, comp.extra
    if opt.batches is not None:
        _print_at_fractions([("eta(t)", 10, opt.etas), ("m(t)", 9, opt.batches)])
        lossi, losss = x["loss_integer_batches_same_rates"], x["loss_integer_batches"]
        print(
            f"batch: {opt.batches.min():.4g} … {opt.batches.max():.4g} (mean "
            f"{opt.batches.mean():.4g}), Σ m_t − S = {opt.budget_residual:+.1e}; KKT residuals "
            + ", ".join(f"{k} {v:.1e}" for k, v in opt.kkt.items())
            + f"\ninteger batches (cumulative rounding, same total): L(T) = {losss:.6g} "
            f"({losss / opt.loss - 1:+.2e} vs the continuous optimum) with the rates "
            f"rescaled to keep η/m (eta_int); {lossi:.6g} ({lossi / opt.loss - 1:+.2e}) "
            "with the rates unchanged"
        )
    if opt.betas is not None:
        _print_at_fractions(
            [
                ("eta(t)", 10, opt.etas),
                ("beta(t)", 9, opt.betas),
                ("eta/(1-beta)", 13, opt.etas / (1 - opt.betas)),
            ]
        )
        print(
            f"momentum: beta in [{opt.betas.min():.3g}, {opt.betas.max():.3g}] (beta_max "
            f"{opt.config['beta_max']:g}); gain over plain SGD with its own optimal rates: "
            f"L_SGD/L = {x['gain_over_sgd']:.4f} ({x['loss_sgd']:.6g} vs {opt.loss:.6g})"
        )


def _check_optimize_memory(args: argparse.Namespace, problem) -> None:
    """``rfmodel optimize``'s memory bound (README, guarantees), checked before any work:
    8·T·(2·(F + S) + 8) bytes for the per-step arrays (the rates and the loss curve of each of
    the F baselines and S solved schedules, and 8 arrays of T numbers in flight in a solve or a
    tuning), 2 KiB per per-step control (L-BFGS-B keeps 2·50 + 9 vectors of them, the solver
    and scipy a few more: measured 1.3-1.5 KiB), 40·K·N_eff for the segment states of K
    controls over N_eff modes, and, with the batch or the momentum optimized, 512·T for
    schedule.csv/.json, built in memory. Refused, naming the flag of the largest term, above
    half of the machine's memory (measured peaks per step: 0.48 GB at T = 2e4, 0.94 GB at 3e5,
    2.0 GB at 1e6; bounds 1.2, 1.7, 3.1 GB)."""
    from .control.compare import HARD_DEFAULT_CONTROLS, default_controls

    T, names = args.T, {"eta", *args.optimize}
    joint = names != {"eta"}
    controls = _controls_arg(args)
    K = default_controls(problem.phase, T) if controls == "auto" else controls
    compare = args.compare if args.compare is not None else problem.phase == "hard" and not joint
    S = 1 + bool(compare) + bool(args.monotone) + joint
    if K is None:
        per_step = T * len(names)
        why = "--per-step" if args.per_step else "--controls 0" if args.controls == 0 else ""
    elif compare:  # the other choice of controls: one per step, every optimized control
        per_step = T * len(names)
        why = "--compare" if args.compare else "the hard phase's default --compare"
    else:
        per_step = 0
    k_max = max(K or 0, 0 if K is None and not compare else min(T, HARD_DEFAULT_CONTROLS))
    n_eff = problem.lam.shape[0]
    t_flag = f"--T={T:.4g}"
    terms = {
        "the per-step arrays": (
            8 * T * (2 * (len(args.families) + S) + 8),
            "8·T·(2·(F + S) + 8)",
            t_flag,
        ),
        "the segment states": (40 * k_max * n_eff, "40·K·N_eff", f"--controls={k_max}"),
    }
    if per_step:
        terms["the per-step controls"] = (
            2048 * per_step,
            f"2048·{len(names)}·T",
            f"{t_flag} with one control per step ({why or 'the default below T = 4096'})",
        )
    if joint:
        terms["schedule.csv/.json"] = (512 * T, "512·T", t_flag)
    _refuse_memory(
        "rfmodel optimize",
        terms,
        f"T = {T:.4g}, F = {len(args.families)} baseline families (--families), S = {S} solved "
        f"schedules, K = {k_max or 'one per step'} controls, N_eff = {n_eff} modes",
        "lower it"
        + (
            "; or pass --controls K (memory O(K·N_eff), whatever T)"
            + ("" if not compare else " and --no-compare")
            if per_step
            else ", or fewer --families"
        ),
    )


def cmd_optimize(args: argparse.Namespace) -> dict[str, Any]:
    from . import Problem
    from .control.compare import check_eta_max, run_comparison, setup_comparison

    say = _say(args)
    problem = Problem(a=args.a, b=args.b, sigma=args.sigma, n_modes=args.n_modes, batch=args.batch)
    _check_optimize_memory(args, problem)
    joint = _joint_args(args)
    if args.out is not None:  # before any work (the default folder needs the run's key)
        writable_dir(args.out)
    if args.eta_max is not None:
        check_eta_max(problem, args.T, args.eta_max, name="--eta-max")
    setup = setup_comparison(
        problem,
        args.T,
        controls=_controls_arg(args),
        families=args.families,
        eta_max=args.eta_max,
        smoothness=args.smoothness,
        monotone=args.monotone,
        compare=args.compare,
        **joint,
    )
    problem = setup.problem  # with the batch optimized: the references' constant batch S/T
    out = writable_dir(_run_dir("optimize", problem, args, setup.config))
    for line in _theory_lines(problem):
        say(line)
    comp = run_comparison(setup, progress=not args.quiet, log=say)
    _print_reports(comp)
    print()
    for line in comp.table_lines():
        print(line)
    title = (
        f"{problem.phase} phase: a={args.a:g}, b={args.b:g}, σ={args.sigma:g}, "
        f"m={args.batch}, N={args.n_modes}, T={args.T}"
    )
    if "samples" in setup.joint_kw:
        title += f", S={setup.joint_kw['samples']:g} samples (constant-batch schedules at m = S/T)"
    what = " and ".join({"eta": "η", "batch": "m", "momentum": "β"}[n] for n in setup.names)
    title += f"\noptimal {what} ({comp.solved[0][0]}) vs {len(comp.baselines)} tuned families"
    paths = comp.write(out, title)
    files = "optimal.npz/.json, table.csv, summary.json"
    if comp.schedule_columns() is not None:
        files += ", schedule.csv/.json"
    print(f"\nwrote {out}/ ({files}, {paths[-1].name})")
    return comp.summary()


# ----------------------------------------------------------------------------- simulate
_SCHEDULES = {
    "constant": "η_t = η",
    "cosine": "cosine decay from η to 0 at T",
    "linear": "linear decay from η to 0 at T",
    "wsd": "warmup-stable-decay: η, then a linear decay over the last 20%%",
    "power_law": "η (1 + t)^-0.5",
}


def _schedule_from_args(args, problem):
    from . import schedules as S

    eta = args.eta if args.eta is not None else 0.5 * problem.eta_critical()
    if eta >= problem.eta_mode_bound():
        raise ValueError(
            f"--eta={eta:g} is beyond the stability bound: every step must have "
            f"eta < {problem.eta_mode_bound():.4g} (per-step bound 2m/((m+1)λ_max));"
            f" the largest stable constant rate is {problem.eta_critical():.4g}"
        )
    makers = {
        "constant": lambda: S.constant(eta),
        "cosine": lambda: S.cosine(eta, args.T),
        "linear": lambda: S.linear(eta, args.T),
        "wsd": lambda: S.wsd(eta, args.T, decay=0.2),
        "power_law": lambda: S.power_law(eta, 0.5),
    }
    return np.asarray(S.as_array(makers[args.schedule](), args.T)), eta


#: Bytes every command's bound starts from: the interpreter, JAX, XLA's compiled programs
#: (measured 0.45-0.5 GiB for the smallest runs).
BASE_MEMORY = 2**30


def _gib(n: float) -> str:
    return f"{n / 2**30:.3g} GiB"


def _refuse_memory(
    command: str, terms: dict[str, tuple[int, str, str]], values: str, fix: str
) -> None:
    """Refuse when the bound 1 GiB + Σ terms exceeds half of this machine's memory, naming the
    flag of the largest term. ``terms``: what -> (bytes, formula, "--flag=value")."""
    from .problem import available_memory

    need, have = BASE_MEMORY + sum(v[0] for v in terms.values()), available_memory()
    if need <= have / 2:
        return
    name, (part, formula, flag) = max(terms.items(), key=lambda kv: kv[1][0])
    bound = " + ".join(f for _, f, _ in terms.values())
    raise ValueError(
        f"{flag} is too large for {command}: its memory bound 1 GiB + {bound} bytes is "
        f"{_gib(need)} with {values}, more than half of this machine's {_gib(have)}; the "
        f"largest term, {formula} = {_gib(part)} ({name}), grows with {flag.split('=')[0]}: "
        + fix.format(flag=flag.split("=")[0])
    )


def _check_sampling_memory(args: argparse.Namespace, chunk: int) -> None:
    """``rfmodel simulate``'s memory bound (README, guarantees), checked before any work: one
    step's minibatch draws (24·chunk·m·M bytes: the samples, their scaled copies and the
    residual products), the per-step arrays (8·(T+1)·(24 + 5·chunk): schedule, theory, mean,
    standard error, one chunk's curves and step keys), the problem's arrays and the iterates
    (8·M·(8 + 2·chunk)) and, with --features N, drawing them (8·(3·N·M + 4·N²)); refused,
    naming the flag of the largest term, above half of the machine's memory."""
    from .problem import random_features_memory

    m, b, T, n = args.n_modes, args.batch, args.T, args.features or 0
    terms = {
        "one step's minibatch draws": (
            24 * chunk * b * m,
            "24·chunk·m·M",
            f"--batch={b:.4g}" if b >= m else f"--n-modes={m:.4g}",
        ),
        "the per-step arrays": (
            8 * (T + 1) * (24 + 5 * chunk),
            "8·(T+1)·(24 + 5·chunk)",
            f"--T={T:.4g}",
        ),
        "the modes": (8 * m * (8 + 2 * chunk), "8·M·(8 + 2·chunk)", f"--n-modes={m:.4g}"),
    }
    if n:
        terms["drawing the random features"] = (
            random_features_memory(n, m),
            "8·(3·N·M + 4·N²)",
            f"--features={n}",
        )
    _refuse_memory(
        "Monte-Carlo sampling",
        terms,
        f"chunk = {chunk} seeds at a time, m = {b:.4g} (--batch), M = {m:.4g} (--n-modes), "
        f"T = {T:.4g}" + (f", N = {n} (--features)" if n else ""),
        "lower it (the exact recursion needs no sampling: rfmodel optimize takes any N and any "
        "T up to 1e8)",
    )


def cmd_simulate(args: argparse.Namespace) -> dict[str, Any]:
    import jax

    from . import Problem, plotting, results
    from .dynamics import diverged, loss_curve
    from .simulate import sgd, theory_excess

    say = _say(args)
    if args.features > args.n_modes:
        raise ValueError(
            f"--features must be an integer in [0, --n-modes={args.n_modes}] (N random features "
            f"of an M-dimensional input need N <= M); got {args.features}"
        )
    # Seeds run together in one vmap: up to 16, fewer for long runs (one chunk's curves and step
    # keys are 16·chunk·T bytes; the seeds' random streams do not depend on the chunk).
    chunk = max(2, min(args.seeds, 16, 2**25 // (args.T + 1)))
    _check_sampling_memory(args, chunk)
    if args.out is not None:  # before any work (the default folder needs the run's key)
        writable_dir(args.out)
    if args.features:
        problem = Problem.from_random_features(
            args.a,
            args.b,
            args.sigma,
            n_features=args.features,
            n_inputs=args.n_modes,
            key=jax.random.key(args.seed + 1),
            batch=args.batch,
        )
    else:
        problem = Problem(
            a=args.a,
            b=args.b,
            sigma=args.sigma,
            n_modes=args.n_modes,
            batch=args.batch,
            n_exact=args.n_modes,
        )
    etas, eta = _schedule_from_args(args, problem)
    config = {
        "problem": problem.config(),
        "T": args.T,
        "schedule": args.schedule,
        "eta": eta,
        "features": args.features,
        "seeds": args.seeds,
        "seed": args.seed,
    }
    out = writable_dir(_run_dir("simulate", problem, args, config))
    for line in _theory_lines(problem):
        say(line)
    rule = "" if args.eta is not None else " (half the largest stable constant rate)"
    say(f"schedule: {args.schedule} ({_SCHEDULES[args.schedule]}), peak rate eta = {eta:.4g}{rule}")
    theory = theory_excess(problem, loss_curve(problem, etas))
    if diverged(theory):
        raise ValueError(
            f"--eta={eta:g}: the schedule diverges; the largest stable constant "
            f"rate is {problem.eta_critical():.4g}"
        )
    t0 = time.perf_counter()
    mc = sgd(
        problem, etas, jax.random.key(args.seed), n_seeds=args.seeds, chunk=chunk,
        progress=not args.quiet,
    )  # fmt: skip
    z = (mc.mean - theory)[1:] / np.maximum(mc.sem[1:], 1e-300)
    meta = {
        "problem": problem.config(),
        "config": config,
        "T": args.T,
        "schedule": args.schedule,
        "eta": eta,
        "seeds": args.seeds,
        "seed": args.seed,
        "max_abs_z": float(np.max(np.abs(z))),
        "final_theory": float(theory[-1]),
        "final_mc": float(mc.mean[-1]),
        "final_sem": float(mc.sem[-1]),
        "mc_seconds": time.perf_counter() - t0,
    }
    results.save_result(
        out / "simulation",
        {"etas": etas, "theory": theory, "mc_mean": mc.mean, "mc_sem": mc.sem},
        meta,
    )
    kind = (
        f"random features N={args.features}, M={args.n_modes}"
        if args.features
        else f"N={args.n_modes}"
    )
    fig = plotting.simulation_figure(
        theory,
        mc.mean,
        mc.sem,
        etas,
        f"{problem.phase} phase: a={args.a:g}, b={args.b:g}, σ={args.sigma:g}, m={args.batch}, "
        f"{kind}, {args.seeds} seeds\n{args.schedule} schedule, peak η = {eta:.4g}",
    )
    plotting.save_figure(fig, out / "simulation.png")
    print(
        f"final excess loss: theory {theory[-1]:.6g}, Monte-Carlo {mc.mean[-1]:.6g} "
        f"± {mc.sem[-1]:.2g} (SE); largest |deviation| over all steps "
        f"{meta['max_abs_z']:.2f} SE"
    )
    print(f"wrote {out}/ (simulation.npz/.json, simulation.png)")
    return meta


# ----------------------------------------------------------------------------- figures
def cmd_figures(args: argparse.Namespace) -> None:
    from .figures import regenerate

    if args.ray and "workers" in args.given:
        raise ValueError(
            f"--workers {args.workers} and --ray {args.ray} conflict: --workers sets the local "
            "worker processes or the CPUs of a new local Ray instance (--ray without an "
            "address); the cluster at ADDRESS runs as many tasks as it has CPUs"
        )
    writable_dir(args.out)
    if args.results is not None:
        writable_dir(args.results, "--results")
    regenerate(
        out=args.out,
        quick=args.quick,
        results_dir=args.results,
        workers=args.workers,
        progress=not args.quiet,
        experiments=args.only,
        backend="local" if args.ray is None else "ray",
        address=args.ray or None,
        log=None if args.quiet else print,
    )


# ----------------------------------------------------------------------------- parser
def _command(sub, name: str, func, summary: str, description: str) -> argparse.ArgumentParser:
    """A subcommand's parser, running ``func(args)``."""
    p = sub.add_parser(name, help=summary, description=description)
    p.set_defaults(func=func)
    return p


def _add_optimize(sub) -> None:
    from .control import CONTROLS
    from .control.compare import EASY_MAX_CONTROLS, HARD_DEFAULT_CONTROLS
    from .schedules import FAMILIES, OPTAX_FAMILIES

    p = _command(
        sub,
        "optimize",
        cmd_optimize,
        "optimal schedule vs tuned baselines (the main job)",
        "Solve for the schedule minimizing the final loss L(T), tune every baseline family on "
        "the same dynamics, print the table, write the run folder.",
    )
    _problem_args(p)
    p.add_argument(
        "--controls",
        type=int_flag(0, T_MAX),
        default=None,
        help="K piecewise-constant controls in [1, T], or 0 for one per step (default: K = "
        f"min(T, {HARD_DEFAULT_CONTROLS}) in the hard phase, whose per-step optimum alternates "
        "long and short steps; one per step in the easy phase, where it is smooth, up to "
        f"K = {EASY_MAX_CONTROLS})",
    )
    p.add_argument(
        "--per-step",
        action="store_true",
        help="one control per step (same as --controls 0): in the hard phase, the alternating "
        "long-step optimum",
    )
    p.add_argument(
        "--compare",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also solve the other control choice (per step vs K) and print what each costs "
        "(default: on in the hard phase)",
    )
    p.add_argument(
        "--monotone",
        action="store_true",
        help="export the best schedule that is non-increasing after its warmup (the part "
        "before the peak of the unconstrained optimum); the table shows both",
    )
    _rate_flag(
        p,
        "--eta-max",
        "upper bound on every rate η_t, for the optimum and the baselines alike "
        "(default: the per-step stability bound 2m/((m+1)λ_max))",
    )
    p.add_argument(
        "--smoothness",
        type=float_flag(0),
        default=0.0,
        help="penalty κ >= 0 on Σ (u_{j+1} − u_j)² of the controls, added to log L(T)" + _DFLT,
    )
    known = [*FAMILIES, *OPTAX_FAMILIES]
    p.add_argument(
        "--families",
        type=names_flag(known, all_=list(FAMILIES)),
        default=list(FAMILIES),
        metavar="all|NAME[,NAME...]",
        help="baseline families to tune: 'all' (default: "
        + ", ".join(FAMILIES)
        + ") or a comma-separated list; also optax's own factories: "
        + ", ".join(OPTAX_FAMILIES),
    )
    p.add_argument(
        "--optimize",
        type=names_flag(list(CONTROLS)),
        default=["eta"],
        metavar="NAME[,NAME...]",
        help="controls to optimize, a comma-separated list from "
        + ", ".join(CONTROLS)
        + " (eta is always included; default: eta)",
    )
    p.add_argument(
        "--samples",
        type=float_flag(1, SAMPLES_MAX),
        default=None,
        help="sample budget S = Σ_t m_t with --optimize batch, at most 2^53 (integer batches "
        "are counted exactly in float64; default T·batch)",
    )
    p.add_argument(
        "--batch-min",
        type=float_flag(1),
        default=None,
        help="smallest batch with --optimize batch (default 1)",
    )
    p.add_argument(
        "--batch-max",
        type=float_flag(1),
        default=None,
        help="largest batch with --optimize batch (default: unbounded)",
    )
    p.add_argument(
        "--beta-max",
        type=float_flag(0, 1, lo_open=True, hi_open=True),
        default=None,
        help="largest momentum β_t with --optimize momentum (heavy ball, optax.sgd's momentum;"
        " default 0.9)",
    )


def _add_simulate(sub) -> None:
    p = _command(
        sub,
        "simulate",
        cmd_simulate,
        "exact recursion vs Monte-Carlo SGD",
        "Run minibatch SGD on sampled Gaussian data under a schedule and compare the mean loss "
        "with the exact recursion (both written and plotted).",
    )
    _problem_args(p, T=500, n_modes=200)
    p.add_argument(
        "--schedule",
        default="constant",
        choices=list(_SCHEDULES),
        help="the schedule, with peak rate --eta: "
        + "; ".join(f"{k}: {v}" for k, v in _SCHEDULES.items())
        + _DFLT,
    )
    _rate_flag(
        p,
        "--eta",
        "peak learning rate > 0, below the per-step stability bound (default: half the "
        "largest stable constant rate)",
    )
    p.add_argument(
        "--seeds", type=int_flag(2, 10**6), default=64, help="Monte-Carlo seeds in [2, 1e6]" + _DFLT
    )
    p.add_argument(
        "--seed",
        type=int_flag(0, 2**31 - 1),
        default=0,
        help="PRNG seed in [0, 2^31 − 1]" + _DFLT,
    )
    p.add_argument(
        "--features",
        type=int_flag(0, 10**6),
        default=0,
        help="N random features of the n-modes-dimensional input, N in [1, --n-modes] (0: the "
        "plain model)" + _DFLT,
    )


def _add_figures(sub) -> None:
    from .experiments import EXPERIMENTS
    from .runner import default_workers

    p = _command(
        sub,
        "figures",
        cmd_figures,
        "regenerate every figure from saved results",
        "Compute the missing results of every experiment (resuming what is saved), then draw "
        "every figure and write OUT/README.md.",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="small, fast version (CI); needs --out DIR other than the full figures",
    )
    p.add_argument("--out", type=path_flag, default=Path("figures"), help="figure folder" + _DFLT)
    p.add_argument(
        "--results",
        type=path_flag,
        default=None,
        help="results cache (default: OUT/data, committed with the figures)",
    )
    p.add_argument(
        "--only",
        type=names_flag(list(EXPERIMENTS)),
        default=list(EXPERIMENTS),
        metavar="NAME[,NAME...]",
        help="run only these experiments: " + ", ".join(EXPERIMENTS) + " (default: all)",
    )
    p.add_argument(
        "--workers",
        type=int_flag(1, 1024),
        action=_Given,
        default=None,
        help=f"local worker processes, one XLA thread each (default {default_workers()}: the "
        "cores available, at most 2; env RFMODEL_WORKERS)",
    )
    p.add_argument(
        "--ray",
        nargs="?",
        const="",
        default=None,
        metavar="ADDRESS",
        help="run the tasks on Ray (pip install 'rfmodel[ray]'): a new local Ray instance, or "
        "the cluster at ADDRESS ('auto' for the running one, ray://host:10001); same cache "
        "and results as the local run",
    )
    p.set_defaults(given=frozenset())
    _common_args(p)


# ----------------------------------------------------------------------------- command line
def _fit_lines(f) -> list[str]:
    lo, hi = f.a_minus_b_interval
    sure = "" if f.certain else " — not certain: the interval contains a = b"
    lines = [
        f"phase: {f.phase} (a - b = {f.a - f.b:+.3f}, 95% interval [{lo:+.3f}, {hi:+.3f}], "
        f"p-value of a = b {f.phase_pvalue:.2g}){sure}",
        f"a = {f.a:.3f} ± {f.a_se:.3f}, b = {f.b:.3f} ± {f.b_se:.3f}, sigma = {f.sigma:.4g} "
        f"(noise relative to the initial excess loss)",
        f"scales: model rate = {f.lr_scale:.4g} x lr, loss = {f.floor:.4g} + {f.loss_scale:.4g}"
        f" x L(t); batch {f.batch:g}, gradient-noise multiplier kappa = {f.kappa:.3g}"
        + (" (fitted: the model's batch is batch / kappa)" if f.fit_kappa else " (held)"),
        "fit: rms log-residual "
        + ", ".join(f"{k} {v:.3g}" for k, v in f.run_rms.items())
        + f" ({f.n_points} points, {f.n_eff:.0f} effective)",
    ]
    if math.isfinite(f.systematic):
        from .practice import VERDICT

        good, usable = VERDICT["systematic"]
        lines.append(
            f"quality: {f.verdict} (systematic rms log-residual {f.systematic:.3g}; good <= "
            f"{good:g}, usable <= {usable:g})"
        )
    lines += [f"warning: {w}" for w in f.warnings]
    return lines


def cmd_fit(args: argparse.Namespace) -> dict[str, Any]:
    """``rfmodel fit CURVES.csv [--schedule S.csv] [--law L] [--holdout RUNS | --cv]
    [--test TEST.csv] [--json OUT] [--no-floor] [--kappa K]``."""
    from .practice import (
        MODELS,
        check_fit_runs,
        cross_validate,
        evaluate,
        fit_model,
        format_table,
        quality,
        read_curves,
        read_schedule,
        summarize,
        verdict,
    )
    from .results import write_json

    if args.json is not None:  # checked before the fit, not after it
        if args.json.is_dir():
            raise ValueError(f"--json: {args.json} is a folder; give a file name")
        writable_dir(args.json.parent, "--json")
    if args.cv and args.holdout:
        raise ValueError("--cv and --holdout: choose one (--cv holds out every run in turn)")
    models = list(MODELS) if args.law == "all" else [args.law]
    sched = read_schedule(args.schedule) if args.schedule is not None else None
    runs = read_curves(args.curves, schedule=sched, other_runs_ok=args.test is not None)
    test = []
    if args.test is not None:
        test = read_curves(args.test, schedule=sched, distinct=False, other_runs_ok=True)
        if sched is not None:
            known = {r.name for r in runs} | {r.name for r in test}
            extra = [n for n in sched if n not in known]
            if extra:
                raise ValueError(
                    f"--schedule: run {extra[0]!r} ({sched[extra[0]][0][0]}) is in neither "
                    f"{args.curves} nor {args.test}"
                )
    train = runs
    if args.holdout:
        names = [n.strip() for n in args.holdout.split(",") if n.strip()]
        known = [r.name for r in runs]
        unknown = [n for n in names if n not in known]
        if unknown or not names:
            raise ValueError(
                f"--holdout: run names must be from {args.curves} ({', '.join(known)}); got "
                f"{args.holdout!r}"
            )
        train = [r for r in runs if r.name not in names]
        test = [r for r in runs if r.name in names] + test
        check_fit_runs(models, train, "--holdout: the runs left to fit")
    else:
        check_fit_runs(models, train, str(args.curves))
    if args.cv:
        if len(runs) < 3:
            raise ValueError(
                f"--cv: leave-one-run-out needs at least 3 runs; {args.curves} has {len(runs)}"
            )
        for r in runs:
            check_fit_runs(models, [q for q in runs if q is not r], f"--cv without {r.name!r}")
    fit_kwargs = {"rf": {"floor": not args.no_floor, "kappa": args.kappa}}
    fits, table = {}, []
    for m in models:
        fits[m] = fit_model(m, train, **fit_kwargs.get(m, {}))
        q = quality(fits[m], train)
        table.append({"model": m, **q})
    if "rf" in fits:
        for line in _fit_lines(fits["rf"]):
            print(line)
    for m in models:
        if m != "rf":
            p = ", ".join(f"{k} = {v:.4g}" for k, v in fits[m].params.items())
            print(f"{m}: {p}")
    rows = evaluate(fits, test, split="holdout" if args.holdout else "test") if test else []
    if args.cv:
        rows += cross_validate(runs, models=models, fit_kwargs=fit_kwargs)
    summ = {}
    for split in dict.fromkeys(r["split"] for r in rows):
        summ[split] = summarize([r for r in rows if r["split"] == split])
    for t in table:
        for split, per in summ.items():
            t[f"{split}_prede"] = per[t["model"]]["prede"]
        pred = [t[k] for k in t if k.endswith("_prede")]
        t["verdict"] = verdict(t["systematic"], pred[0] if pred else None)
    print(
        f"\n{'model':10s} {'fit rms':>8s} {'systematic':>10s} "
        + "".join(f"{s + ' prede':>14s}" for s in summ)
        + "  verdict"
    )
    for t in table:
        print(
            f"{t['model']:10s} {t['rms']:8.4f} {t['systematic']:10.4f} "
            + "".join(f"{100 * t[f'{s}_prede']:13.3f}%" for s in summ)
            + f"  {t['verdict']}"
        )
    if rows:
        print()
        for split in summ:
            print(f"predicted runs ({split}):")
            for line in format_table([r for r in rows if r["split"] == split]):
                print("  " + line)
    out: dict[str, Any] = fits["rf"].to_dict() if "rf" in fits else {}
    out["fits"] = {m: f.to_dict() for m, f in fits.items()}
    out["table"] = table
    out["predictions"] = rows
    out["summary"] = summ
    if args.json is not None:
        write_json(args.json, out)
        print(f"wrote {args.json}")
    return out


def cmd_advise(args: argparse.Namespace) -> dict[str, Any]:
    """``rfmodel advise CURVES.csv --T T_NEW [--out DIR] [--lr-max X] [--controls K]``."""
    from .practice import FitResult, advise, advise_runs, read_curves
    from .results import read_json

    if args.controls is not None and not 1 <= args.controls <= args.T:
        raise ValueError(f"--controls must be an integer in [1, T={args.T}]; got {args.controls}")
    out = writable_dir(args.out or Path("runs") / f"advise_T{args.T}")
    runs = read_curves(args.curves)
    kw = {"lr_max": args.lr_max, "controls": args.controls}
    if args.fit is not None:
        try:
            f = FitResult.from_dict(read_json(args.fit))
        except (OSError, ValueError) as e:
            raise ValueError(f"--fit {args.fit}: {e}") from None
        try:
            adv = advise(f, args.T, runs=runs, **kw)
        except ValueError as e:
            raise ValueError(str(e).replace("lr_max", "--lr-max")) from None
    else:
        try:
            adv = advise_runs(runs, args.T, **kw)
        except ValueError as e:
            raise ValueError(str(e).replace("lr_max", "--lr-max")) from None
    for line in _fit_lines(adv.fit):
        print(line)
    bad = {n: s for n, s in adv.status.items() if s != "ok"}
    if bad:
        print("pilots left out of the fit: " + ", ".join(f"{n} ({s})" for n, s in bad.items()))
    if adv.loo_prede:
        print(
            "leave-one-out prediction of each pilot (mean |err|/loss): "
            + ", ".join(f"{n} {v:.1%}" for n, v in adv.loo_prede.items())
        )
    print(f"\nadvice for T = {args.T}: {adv.choice}; {adv.reason}")
    print(f"predicted final loss at T = {args.T} (rates capped at {adv.lr_max:.4g}):")
    print(f"{'schedule':28s} {'loss':>12s} {'ratio':>8s}")
    for r in adv.table():
        print(f"{r['schedule']:28s} {r['loss']:12.6g} {r['ratio']:8.4f}")
    if adv.next_pilot is not None:
        p = adv.next_pilot
        print(f"\nthe pilot that would help most: {p['schedule']} at peak {p['peak']:.4g}")
        print(f"  ({p['why']})")
    if adv.caution is not None:
        print(f"\ncaution: {adv.caution['why']}")
    paths = adv.write(out)
    print(f"\nwrote {', '.join(str(p) for p in paths)}")
    print(f"use it: import sys; sys.path.insert(0, '{out}'); from schedule import schedule")
    return adv.to_dict()


def cmd_pilot(args: argparse.Namespace) -> dict[str, Any]:
    """``rfmodel pilot --T T [--lr LR] [--budget P] [--out DIR]``."""
    from .practice import plan_pilots, write_plan

    lr = 1.0 if args.lr is None else args.lr
    plan = plan_pilots(args.T, lr=lr, budget=args.budget)
    out = writable_dir(args.out or Path("runs") / f"pilot_T{args.T}")
    rate = (
        "peaks as multiples of your usual peak rate"
        if args.lr is None
        else f"usual peak rate {lr:g}"
    )
    print(f"pilot plan for a run of T = {args.T} updates ({rate}):")
    print(f"{'name':14s} {'schedule':10s} {'peak':>10s} {'steps':>8s}")
    for p in plan:
        print(f"{p.name:14s} {p.schedule:10s} {p.peak:10.4g} {p.steps:8d}")
    paths = write_plan(plan, out, args.T)
    print(f"\nwrote {', '.join(str(p) for p in paths)}")
    print(
        "train each pilot, log rows run,step,lr,loss (the pilot's name as run) into a CSV, then: "
        f"rfmodel advise CURVES.csv --T {args.T}"
    )
    return {"pilots": [vars(p) for p in plan], "out": str(out)}


_CURVES_HELP = (
    "CSV with columns run,step,lr,loss (optional batch): the loss after step updates and the "
    "rate of update step; an empty loss is a schedule-only row, an empty lr a row without a "
    "rate (rates are linear between the rows that have one); >= 2 runs, different schedules"
)


def _add_fit(sub) -> None:
    p = _command(
        sub,
        "fit",
        cmd_fit,
        "fit the model (or the empirical laws) to logged loss curves; predict held-out runs",
        "Fit the power-law model (a, b, σ², a loss scale, a time scale and a floor) to logged "
        "loss curves through the exact dynamics, by a Huber loss on log-loss; report the phase "
        "with its uncertainty, the fit's quality and what to distrust (docs/theory.md §9). "
        "--law fits the Multi-Power Law and the LR-annealing law by the same objective; "
        "--holdout, --test and --cv predict runs the fit has not seen and score them by r2, "
        "mae, rmse, prede (mean |err|/loss) and worste (max |err|/loss).",
    )
    p.add_argument("curves", type=Path, help=_CURVES_HELP)
    p.add_argument(
        "--schedule",
        type=Path,
        default=None,
        help="CSV with columns run,step,lr (optional batch): per-update rates given apart from "
        "the losses, merged into the runs of the same name (of CURVES and --test)",
    )
    p.add_argument(
        "--law",
        choices=["rf", "mpl", "annealing", "all"],
        default="rf",
        help="the model to fit: rf (this library's), mpl (Multi-Power Law), annealing "
        "(LR-annealing law) or all three in one table" + _DFLT,
    )
    p.add_argument(
        "--holdout",
        default=None,
        metavar="RUN[,RUN...]",
        help="fit the other runs and predict these (names from CURVES)",
    )
    p.add_argument(
        "--test", type=Path, default=None, help="a curves CSV of runs to predict (not fitted)"
    )
    p.add_argument(
        "--cv",
        action="store_true",
        help="leave-one-run-out: fit all runs but one and predict it, for every run",
    )
    p.add_argument(
        "--json",
        type=Path,
        default=None,
        help="write the fit (the rf parameters at the top level, every model under 'fits') and "
        "the held-out metrics to this JSON file",
    )
    p.add_argument("--no-floor", action="store_true", help="no irreducible loss (floor = 0)")
    p.add_argument(
        "--kappa",
        type=kappa_flag,
        default="fit",
        help="the gradient-noise multiplier κ of the rf model (its batch is the runs' batch / "
        "κ): 'fit', or a number > 0 held fixed (1: the paper's Gaussian features)" + _DFLT,
    )
    _common_args(p)


def _add_advise(sub) -> None:
    p = _command(
        sub,
        "advise",
        cmd_advise,
        "the schedule to run for T steps, chosen with the model fitted to pilot runs",
        "Fit the model to logged pilot runs (or reuse a 'rfmodel fit --json' file), tune the "
        "schedules practitioners trust (cosine, warmup-stable-decay) and the free-form optimum "
        "on the fit and the fits leaving one pilot out, and recommend the best one the model can "
        "vouch for, or refuse (exit 0, the reason in advice.json) when it cannot predict the "
        "pilots. Writes schedule.csv, schedule.py (an optax schedule) and advice.json.",
    )
    p.add_argument("curves", type=Path, help=_CURVES_HELP)
    p.add_argument(
        "--T", type=int_flag(2, T_MAX), required=True, help="number of steps of the new run"
    )
    p.add_argument(
        "--out", type=Path, default=None, help="output folder (default runs/advise_T<T>)"
    )
    p.add_argument(
        "--lr-max",
        type=float_flag(0.0, lo_open=True),
        default=None,
        help="cap on the learning rate (default: the largest rate of a pilot that trained)",
    )
    p.add_argument(
        "--controls",
        type=int_flag(1, 10**6),
        default=None,
        help="piecewise-constant controls of the free-form optimum (default 200)",
    )
    p.add_argument(
        "--fit", type=Path, default=None, help="reuse the parameters of a 'rfmodel fit --json' file"
    )
    _common_args(p)


def _add_pilot(sub) -> None:
    from .practice.pilot import MAX_PILOTS

    p = _command(
        sub,
        "pilot",
        cmd_pilot,
        "the pilot runs to train before a run of T steps",
        "The pilot plan that pins down what 'rfmodel advise' needs: an LR sweep of three cosine "
        "runs a factor 3 apart around your usual rate (--lr; without it, peaks relative to it) "
        "and a constant run, each T/4 steps (fewer runs with --budget). Writes pilots.csv, "
        "pilots.json and pilot_schedules.csv (every update's rate).",
    )
    p.add_argument(
        "--T", type=int_flag(8, T_MAX), required=True, help="number of steps of the run advised"
    )
    p.add_argument(
        "--lr",
        type=float_flag(0.0, lo_open=True),
        default=None,
        help="your usual peak learning rate (the sweep's centre); without it the peaks are "
        "written as multiples of that rate (lr = 1)",
    )
    p.add_argument(
        "--budget",
        type=int_flag(2, MAX_PILOTS),
        default=MAX_PILOTS,
        help=f"number of pilot runs, 2 to {MAX_PILOTS}" + _DFLT,
    )
    p.add_argument("--out", type=Path, default=None, help="output folder (default runs/pilot_T<T>)")
    _common_args(p)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser: one builder per subcommand."""
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="rfmodel", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"rfmodel {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_add_optimize, _add_simulate, _add_figures, _add_fit, _add_pilot, _add_advise):
        add(sub)
    return parser


def _interrupted(prog: str) -> Callable[[int, list[str] | None, list[str] | None], str]:
    """The line printed when a signal stops the command."""

    def text(signum: int, finished: list[str] | None, unfinished: list[str] | None) -> str:
        kept = (
            f"{len(finished)} task(s) finished in this run are saved, {len(unfinished)} were not"
            if finished or unfinished
            else "every result saved before it is kept"
        )
        return (
            f"{prog}: interrupted by {signal.Signals(signum).name}: stopped; {kept}; "
            "run the same command again to resume"
        )

    return text


def _run(argv: list[str] | None) -> int:
    """Parse, run the command, turn its errors into messages and exit statuses."""
    from .runner import Interrupted

    args = build_parser().parse_args(argv)
    prog = f"rfmodel {args.command}"
    enable_compilation_cache()  # compiled programs kept on disk for the next process
    try:
        args.func(args)
    except Interrupted as e:  # a library-level stop (main called off the main thread)
        print(_interrupted(prog)(e.signum, e.finished, e.unfinished), file=sys.stderr)
        return e.exit_status
    except ValueError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    except RuntimeError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the command; exit status 0, 1 (tasks failed), 2 (bad input), 130/143 (interrupted).

    The first statement hands everything (parsing included) to :func:`rfmodel.runner.run_stoppable`:
    the command runs on a thread and SIGINT/SIGTERM end the process within a second, whatever it
    is computing, with status 130/143 and a message; finished results stay saved."""
    return run_stoppable(lambda: _run(argv), message=_interrupted(_prog_name(argv)))


def console() -> None:
    """The ``rfmodel`` program (and ``python -m rfmodel.cli``): :func:`main` on ``sys.argv``,
    then the process ends at once with its status (``os._exit`` after flushing): a signal up to
    the last instruction still exits 130/143 with the message, and no interpreter shutdown
    races XLA's threads."""
    import os

    try:
        code = run_stoppable(
            lambda: _run(None), message=_interrupted(_prog_name(None)), restore=False
        )
    except SystemExit as e:  # argparse: --help, --version, a bad flag
        code = e.code if isinstance(e.code, int) else 0 if e.code is None else 2
        if not isinstance(e.code, int | None):
            print(e.code, file=sys.stderr)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (rfmodel ... | head)
            pass
    os._exit(code if isinstance(code, int) else 1)


def _prog_name(argv: list[str] | None) -> str:
    """``rfmodel <command>`` from the arguments, without parsing them (the interrupt message can
    be needed before the parser is built)."""
    args = sys.argv[1:] if argv is None else argv
    first = next((str(a) for a in args if not str(a).startswith("-")), "")
    commands = ("optimize", "simulate", "figures", "fit", "pilot", "advise")
    return "rfmodel" + (f" {first}" if first in commands else "")


if __name__ == "__main__":
    console()
