"""The ``rfmodel`` command.

``rfmodel optimize``  optimal schedule vs every tuned baseline (the main job)
``rfmodel simulate``  exact recursion vs Monte-Carlo SGD, figure and numbers
``rfmodel figures``   regenerate every figure in figures/ from saved results
``rfmodel fit``       fit the model to your logged loss curves (phase, a, b, scales)
``rfmodel advise``    the schedule the fitted model recommends for T steps, vs tuned baselines

Every flag is checked before any work starts; a bad value exits with status 2 and a message
naming the flag and its valid range. SIGINT (Ctrl-C) or SIGTERM stops a command within seconds
(status 130 or 143), keeping every result already saved; rerunning resumes.
"""

from __future__ import annotations

import argparse
import math
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

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


def names_flag(known: list[str], *, all_: list[str] | None = None) -> Callable[[str], list[str]]:
    """A comma-separated list of names from ``known`` (``all``: the list ``all_``)."""

    def parse(text: str) -> list[str]:
        if all_ is not None and text == "all":
            return list(all_)
        names = [t.strip() for t in text.split(",") if t.strip()]
        unknown = [n for n in names if n not in known]
        if unknown or not names:
            raise argparse.ArgumentTypeError(
                f"must be {'all or ' if all_ is not None else ''}comma-separated names from "
                f"{', '.join(known)}; got {text!r}"
            )
        return names

    return parse


def writable_dir(path: Path, flag: str = "--out") -> Path:
    """Create ``path`` if needed and prove it writable, before any work (ValueError if not)."""
    if path.exists() and not path.is_dir():
        raise ValueError(f"{flag}: {path} is a file, not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".rfmodel-write-check-"):
            pass
    except OSError as e:
        raise ValueError(f"{flag}: cannot write to {path} ({e.strerror or e})") from None
    return path


# ----------------------------------------------------------------------------- shared flags
T_MAX = 10**8
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
        p.add_argument(flag, type=kind, default=default, help=text + _DFLT)
    p.add_argument(
        "--out",
        type=Path,
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
#: How the table names each control (``--optimize`` names → the symbols of the schedule).
_SYMBOL = {"eta": "eta", "batch": "m", "momentum": "beta"}
#: Controls of the default hard-phase schedule: K = min(T, this) piecewise-constant rates.
HARD_DEFAULT_CONTROLS = 100
#: Easy phase: one control per step up to this T, then this many (the solver's L-BFGS-B keeps
#: 2 × 50 vectors of K numbers: 0.8 GB for K = 10^6 per-step controls, 3 MB for K = 4096).
EASY_MAX_CONTROLS = 4096


def _controls(args: argparse.Namespace, phase: str) -> int | None:
    """K (None: one control per step): --per-step / --controls 0 → per step; --controls K;
    default: K = min(T, 100) in the hard phase (smooth), per step otherwise (at most 4096)."""
    if args.per_step:
        return None
    if args.controls is not None:
        if args.controls > args.T:
            raise ValueError(
                f"--controls must be an integer in [0, T={args.T}]; got {args.controls}"
            )
        return None if args.controls in (0, args.T) else args.controls
    if phase == "hard":
        return min(args.T, HARD_DEFAULT_CONTROLS)
    return None if args.T <= EASY_MAX_CONTROLS else EASY_MAX_CONTROLS


def _k_label(K: int | None) -> str:
    return "per step" if K is None else f"K={K}"


def _optimize_controls(args: argparse.Namespace, problem) -> dict[str, Any]:
    """The controls named by --optimize (``eta`` always included) and the batch settings,
    checked before any work starts: {} for the rate alone, else optimize_schedule's keywords."""
    from .control import CONTROLS, _validate_batch

    names = {"eta", *args.optimize}
    if "batch" not in names:
        given = [f for f in ("samples", "batch_min", "batch_max") if getattr(args, f) is not None]
        if given:
            flag = "--" + given[0].replace("_", "-")
            raise ValueError(f"{flag} needs --optimize batch (it sets the batch control)")
    if "momentum" not in names and args.beta_max is not None:
        raise ValueError("--beta-max needs --optimize momentum (it bounds the momentum control)")
    if names == {"eta"}:
        return {}
    out: dict[str, Any] = {"optimize": tuple(c for c in CONTROLS if c in names)}
    if "batch" in names:
        samples = args.samples if args.samples is not None else args.T * args.batch
        S, lo, hi = _validate_batch(
            problem, args.T, ("eta", "batch"), samples, args.batch_min, args.batch_max, None
        )
        out.update(samples=S, batch_min=lo, batch_max=hi)
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


def _momentum_report(opt, sgd) -> dict[str, Any]:
    """Print β(t) beside η(t) and the gain over plain SGD (the rate alone at β = 0)."""
    _print_at_fractions(
        [
            ("eta(t)", 10, opt.etas),
            ("beta(t)", 9, opt.betas),
            ("eta/(1-beta)", 13, opt.etas / (1 - opt.betas)),
        ]
    )
    gain = sgd.loss / opt.loss
    print(
        f"momentum: beta in [{opt.betas.min():.3g}, {opt.betas.max():.3g}] (beta_max "
        f"{opt.config['beta_max']:g}); gain over plain SGD with its own optimal rates: "
        f"L_SGD/L = {gain:.4f} ({sgd.loss:.6g} vs {opt.loss:.6g})"
    )
    return {"gain_over_sgd": gain, "loss_sgd": sgd.loss}


def _batch_report(problem, opt, out: Path) -> dict[str, Any]:
    """Print η(t), m(t) and what integer batches cost; write schedule.csv/.json (step, eta,
    batch; batch_int: integer batches with the same total, eta_int: the rates rescaled to keep
    η_t/m_t per step). A data loader reads m_t per step."""
    from .control import integer_batches
    from .dynamics import loss_curve

    T = opt.etas.size
    m_int = integer_batches(opt.batches)
    eta_int = np.minimum(opt.etas * m_int / opt.batches, opt.config["eta_max"])
    m = m_int.astype(np.float64)
    loss_int = float(loss_curve(problem, opt.etas, m, opt.betas)[-1])  # betas: None without
    loss_scaled = float(loss_curve(problem, eta_int, m, opt.betas)[-1])  # the momentum control
    _print_at_fractions([("eta(t)", 10, opt.etas), ("m(t)", 9, opt.batches)])
    print(
        f"batch: {opt.batches.min():.4g} … {opt.batches.max():.4g} (mean {opt.batches.mean():.4g}),"
        f" Σ m_t − S = {opt.budget_residual:+.1e}; KKT residuals "
        + ", ".join(f"{k} {v:.1e}" for k, v in opt.kkt.items())
        + f"\ninteger batches (cumulative rounding, same total): L(T) = {loss_scaled:.6g} "
        f"({loss_scaled / opt.loss - 1:+.2e} vs the continuous optimum) with the rates "
        f"rescaled to keep η/m (eta_int); {loss_int:.6g} ({loss_int / opt.loss - 1:+.2e}) "
        "with the rates unchanged"
    )
    columns = {
        "step": np.arange(T),
        "eta": opt.etas,
        "batch": opt.batches,
        "batch_int": m_int,
        "eta_int": eta_int,
    }
    _write_schedule(out, opt, columns, {"samples": opt.config["samples"]})
    return {"loss_integer_batches": loss_scaled, "loss_integer_batches_same_rates": loss_int}


def _write_schedule(out: Path, opt, columns: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    """schedule.csv and schedule.json: one row per step (``columns``, plus ``beta`` when the
    schedule has momenta), for a data loader or an optimizer to read per step."""
    from . import results

    if opt.betas is not None:
        columns = {**columns, "beta": opt.betas}
    fmt = [
        ("{:d}" if np.issubdtype(np.asarray(v).dtype, np.integer) else "{:.12g}")
        for v in columns.values()
    ]
    rows = "".join(
        ",".join(f.format(x) for f, x in zip(fmt, row, strict=True)) + "\n"
        for row in zip(*(np.asarray(v).tolist() for v in columns.values()), strict=True)
    )
    results.write_text(out / "schedule.csv", ",".join(columns) + "\n" + rows)
    results.write_json(
        out / "schedule.json", {**{k: np.asarray(v).tolist() for k, v in columns.items()}, **meta}
    )


def cmd_optimize(args: argparse.Namespace) -> dict[str, Any]:
    from . import Problem, plotting, results
    from .control import optimize_schedule
    from .schedules import tune

    say = _say(args)
    problem = Problem(a=args.a, b=args.b, sigma=args.sigma, n_modes=args.n_modes, batch=args.batch)
    joint = _optimize_controls(args, problem)
    if "samples" in joint:  # the reference schedules run at the constant batch S/T
        problem = Problem(
            a=args.a,
            b=args.b,
            sigma=args.sigma,
            n_modes=args.n_modes,
            batch=joint["samples"] / args.T,
        )
    K = _controls(args, problem.phase)
    compare = args.compare if args.compare is not None else problem.phase == "hard"
    alt_K = (min(args.T, HARD_DEFAULT_CONTROLS) if K is None else None) if compare else "none"
    config = {
        "problem": problem.config(),
        "T": args.T,
        "controls": K,
        "eta_max": args.eta_max,
        "smoothness": args.smoothness,
        "monotone": args.monotone,
        "families": args.families,
        "compare": alt_K,
        **(
            {"joint": {k: list(v) if isinstance(v, tuple) else v for k, v in joint.items()}}
            if joint
            else {}
        ),
    }
    out = writable_dir(_run_dir("optimize", problem, args, config))
    for line in _theory_lines(problem):
        say(line)
    if args.eta_max is not None:
        _check_eta_max(problem, args.T, args.eta_max)
    t0 = time.perf_counter()
    solve = dict(eta_max=args.eta_max, smoothness=args.smoothness, progress=not args.quiet)
    main_res = optimize_schedule(problem, args.T, controls=K, **solve, **joint)
    solved = [(_k_label(K), main_res, K)]
    if (
        compare and not joint
    ):  # what the other choice costs (hard phase: per-step long steps vs smooth K)
        alt = optimize_schedule(problem, args.T, controls=alt_K, init=main_res.etas, **solve)
        solved.append((_k_label(alt_K), alt, alt_K))
    if args.monotone and not joint:  # non-increasing after the warmup (the part before the peak)
        mono = optimize_schedule(
            problem, args.T, controls=K, init=main_res.etas, monotone=True, **solve
        )
        solved.insert(0, (f"{_k_label(K)}, monotone", mono, K))
    label, opt, _ = solved[0]  # the exported schedule: the row "optimal"
    names = " and ".join(_SYMBOL[n] for n in joint.get("optimize", ("eta",)))
    label = f"optimal ({label})" if not joint else f"optimal {names} ({label})"
    say(
        f"{label}: L(T) = {opt.loss:.6g} ({opt.iterations} iterations, {opt.message}, "
        f"{opt.wall_time:.1f} s)"
    )
    opt.save(out / "optimal")
    for i, (_, r, _) in enumerate(solved[1:]):
        r.save(out / f"optimal_alternative{i + 1}")

    from tqdm.auto import tqdm

    tuned = {}
    bar = tqdm(args.families, desc="tuning baselines", unit="family", disable=args.quiet)
    for name in bar:
        bar.set_postfix_str(name)
        r = tune(name, problem, args.T, eta_max=args.eta_max)
        tuned[name] = {"etas": r.etas, "curve": r.curve, "loss": r.loss, "params": r.params}
    rows = [
        {
            "schedule": "optimal" if i == 0 else f"optimal, {lab}",
            "controls": lab,
            "loss": r.loss,
            "ratio_to_optimal": r.loss / opt.loss,
            "params": {},
            "seconds": r.wall_time,
            "note": (
                f"{lab}, exported (optimal.npz)"
                if i == 0
                else ("--per-step" if k is None else f"--controls {k}")
                + f"; optimal_alternative{i}.npz"
            ),
        }
        for i, (lab, r, k) in enumerate(solved)
    ]
    extra: dict[str, Any] = {}
    if joint:  # the optimum of the rate alone (plain SGD, at the constant batch S/T)
        const = optimize_schedule(
            problem, args.T, controls=K, **{**solve, "eta_max": opt.config["eta_max"]}
        )
        rows[0]["schedule"] = "optimal " + " and ".join(_SYMBOL[n] for n in joint["optimize"])
        batch = "batch" in joint["optimize"]
        rows.insert(
            1,
            {
                "schedule": f"optimal eta at m={problem.batch:g}" if batch else "optimal eta, SGD",
                "controls": _k_label(K),
                "loss": const.loss,
                "ratio_to_optimal": const.loss / opt.loss,
                "params": {},
                "seconds": const.wall_time,
                "note": "the rate alone"
                + (" at the constant batch S/T" if batch else "")
                + (", no momentum" if opt.betas is not None else ""),
            },
        )
        extra = {"constant_batch" if batch else "sgd": const.metadata()}
        if batch:
            extra.update(_batch_report(problem, opt, out))
        if opt.betas is not None:
            extra.update(_momentum_report(opt, const))
            if not batch:
                _write_schedule(out, opt, {"step": np.arange(args.T), "eta": opt.etas}, {})
    rows += [
        {
            "schedule": n,
            "loss": r["loss"],
            "ratio_to_optimal": r["loss"] / opt.loss,
            "params": r["params"],
            "seconds": None,
            "note": "",
        }
        for n, r in sorted(tuned.items(), key=lambda kv: kv[1]["loss"])
    ]
    cap = "" if args.eta_max is None else f" (every schedule with η <= {args.eta_max:g})"
    print(f"\n{'schedule':28s} {'L(T)':>12s} {'ratio':>8s}  tuned parameters / note{cap}")
    for r in rows:
        params = ", ".join(f"{k}={v:.4g}" for k, v in r["params"].items())
        info = params or f"{r['note']}, {r['seconds']:.1f} s"
        print(f"{r['schedule']:28s} {r['loss']:12.6g} {r['ratio_to_optimal']:8.4f}  {info}")
    csv = "schedule,loss,ratio_to_optimal,params\n" + "".join(
        f"{r['schedule']},{r['loss']:.10g},{r['ratio_to_optimal']:.6f},"
        f'"{";".join(f"{k}={v:.6g}" for k, v in r["params"].items())}"\n'
        for r in rows
    )
    results.write_text(out / "table.csv", csv)
    summary = {
        "problem": problem.config(),
        "T": args.T,
        "config": config,
        "theory": vars(problem.theory()),
        "eta_critical": problem.eta_critical(),
        "table": rows,
        "optimal": opt.metadata(),
        **extra,
        "wall_time": time.perf_counter() - t0,
    }
    results.write_json(out / "summary.json", summary)
    results.save_result(
        out / "baselines",
        {f"{n}_{k}": v[k] for n, v in tuned.items() for k in ("etas", "curve")},
        {n: {"loss": v["loss"], "params": v["params"]} for n, v in tuned.items()},
    )
    title = (
        f"{problem.phase} phase: a={args.a:g}, b={args.b:g}, σ={args.sigma:g}, "
        f"m={args.batch}, N={args.n_modes}, T={args.T}"
    )
    shown = dict(tuned)
    if joint and "samples" in joint:
        title += f", S={joint['samples']:g} samples (constant-batch schedules at m = S/T)"
    if joint:
        shown[rows[1]["schedule"]] = {"etas": const.etas, "curve": const.curve, "loss": const.loss}
    fig = plotting.optimize_figure(
        {
            "etas": opt.etas,
            "curve": opt.curve,
            "loss": opt.loss,
            "batches": opt.batches,
            "betas": opt.betas,
        },
        shown,
        title,
    )
    path = plotting.save_figure(fig, out / "optimize.png")
    files = "optimal.npz/.json, table.csv, summary.json" + (", schedule.csv/.json" if joint else "")
    print(f"\nwrote {out}/ ({files}, {path.name})")
    return summary


def _check_eta_max(problem, T: int, eta_max: float) -> None:
    """--eta-max must allow a rate that lowers the loss within T steps (the solver's start)."""
    from .dynamics import loss_curve

    eta = min(eta_max, 0.5 * problem.eta_critical())
    curve = loss_curve(problem, np.full(T, eta))
    if not curve[-1] < curve[0]:
        raise ValueError(
            f"--eta-max={eta_max:g} is too small: no constant rate η <= {eta_max:g} lowers the "
            f"loss in T={T} steps (L(T) = L(0) = {curve[0]:.4g}); the useful range is up to the "
            f"per-step stability bound {problem.eta_mode_bound():.4g}"
        )


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


def _check_sampling_memory(args: argparse.Namespace, chunk: int) -> None:
    """Monte-Carlo SGD draws chunk × batch samples of dimension M per step: refuse (naming the
    flags) when that, or the problem's arrays, would not fit in half the memory."""
    from .problem import _available_memory

    m_dim = args.n_modes
    per_step = 8 * chunk * args.batch * m_dim * 3  # the draws, scaled draws, residual products
    arrays = 8 * m_dim * (8 + 2 * chunk + (args.features or 0) * 2)
    need, have = per_step + arrays, _available_memory()
    if need > have / 2:
        raise ValueError(
            f"--n-modes={m_dim:.4g} is too large for Monte-Carlo sampling: {chunk} seeds × "
            f"batch {args.batch} × {m_dim:.4g} dimensions need ~{need / 2**30:.3g} GiB, more than "
            f"half of this machine's {have / 2**30:.3g} GiB; sample fewer modes (the exact "
            f"recursion needs no sampling: rfmodel optimize takes any N)"
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
    chunk = max(2, min(args.seeds, 16))
    _check_sampling_memory(args, chunk)
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
        f"{problem.phase}: a={args.a:g}, b={args.b:g}, σ={args.sigma:g}, m={args.batch}, {kind}, "
        f"{args.seeds} seeds",
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
        type=float_flag(1),
        default=None,
        help="sample budget S = Σ_t m_t with --optimize batch (default T·batch)",
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
    p.add_argument("--out", type=Path, default=Path("figures"), help="figure folder" + _DFLT)
    p.add_argument(
        "--results",
        type=Path,
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
    _common_args(p)


def cmd_fit(args: argparse.Namespace) -> dict[str, Any]:
    from .fit import cli_fit

    return cli_fit(args)


def cmd_advise(args: argparse.Namespace) -> dict[str, Any]:
    from .fit import cli_advise

    return cli_advise(args)


_CURVES_HELP = "CSV with columns run,step,lr,loss (optional batch); >= 2 runs, different schedules"


def _add_fit(sub) -> None:
    p = _command(
        sub,
        "fit",
        cmd_fit,
        "fit the model to logged loss curves (phase, a, b, scales)",
        "Fit the power-law model (a, b, σ², a loss scale and a time scale) to logged loss "
        "curves by least squares on log-loss through the exact dynamics; report the phase with "
        "its uncertainty (docs/theory.md §9).",
    )
    p.add_argument("curves", type=Path, help=_CURVES_HELP)
    p.add_argument(
        "--json", type=Path, default=None, help="write the fitted parameters to this JSON file"
    )
    p.add_argument("--no-floor", action="store_true", help="no irreducible loss (floor = 0)")
    _common_args(p)


def _add_advise(sub) -> None:
    p = _command(
        sub,
        "advise",
        cmd_advise,
        "the schedule the fitted model recommends for T steps, vs tuned baselines",
        "Fit the model to logged loss curves (or reuse a `rfmodel fit --json` file), solve for "
        "the optimal schedule at the new horizon, and write it as CSV and as an optax schedule "
        "in Python, with its predicted loss against the tuned baselines.",
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
        help="cap on the learning rate (default: the largest logged rate)",
    )
    p.add_argument(
        "--controls",
        type=int_flag(1, 10**6),
        default=None,
        help="piecewise-constant controls of the schedule (default 200)",
    )
    p.add_argument(
        "--fit", type=Path, default=None, help="reuse the parameters of a `rfmodel fit --json` file"
    )
    _common_args(p)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser: one builder per subcommand."""
    parser = argparse.ArgumentParser(
        prog="rfmodel", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_add_optimize, _add_simulate, _add_figures, _add_fit, _add_advise):
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command; exit status 0, 1 (tasks failed), 2 (bad input), 130/143 (interrupted)."""
    from .runner import Interrupted, _stop_on_signals

    args = build_parser().parse_args(argv)
    prog = f"rfmodel {args.command}"
    try:
        with _stop_on_signals():
            args.func(args)
    except KeyboardInterrupt as e:  # Interrupted (SIGINT/SIGTERM) or a plain Ctrl-C
        signum = e.signum if isinstance(e, Interrupted) else signal.SIGINT
        done = getattr(e, "finished", None)
        kept = (
            f"{len(done)} task(s) finished in this run are saved, {len(e.unfinished)} were not"
            if isinstance(e, Interrupted) and (done or e.unfinished)
            else "every result saved before it is kept"
        )
        print(
            f"{prog}: interrupted by {signal.Signals(signum).name}: stopped; {kept}; "
            "run the same command again to resume",
            file=sys.stderr,
        )
        return 128 + int(signum)
    except ValueError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    except RuntimeError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
