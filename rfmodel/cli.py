"""The ``rfmodel`` command.

``rfmodel optimize``  optimal schedule vs every tuned baseline (the main job)
``rfmodel simulate``  exact recursion vs Monte-Carlo SGD, figure and numbers
``rfmodel figures``   regenerate every figure in figures/ from saved results
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["main"]


def _problem_args(
    p: argparse.ArgumentParser, *, a=2.5, b=1.2, sigma=0.5, batch=4, T=1000, n_modes=1000
) -> None:
    dflt = " (default %(default)s)"
    p.add_argument("--a", type=float, default=a, help="target exponent a > 1" + dflt)
    p.add_argument("--b", type=float, default=b, help="spectral exponent b > 1" + dflt)
    p.add_argument("--sigma", type=float, default=sigma, help="label-noise std" + dflt)
    p.add_argument("--batch", type=int, default=batch, help="batch size m" + dflt)
    p.add_argument("--T", type=int, default=T, help="number of SGD steps" + dflt)
    p.add_argument(
        "--n-modes",
        type=int,
        default=n_modes,
        help="number of modes N (default %(default)s; large N uses a binned tail)",
    )
    p.add_argument("--out", type=Path, default=None, help="output folder")


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


def _check_T(T: int) -> None:
    if T < 1:
        raise ValueError(f"T must be an integer >= 1; got T={T}")


def _optimize_controls(args: argparse.Namespace, problem) -> dict[str, Any]:
    """The controls named by --optimize (``eta`` always included) and the batch settings,
    checked before any work starts: {} for the rate alone, else optimize_schedule's keywords."""
    from .control import CONTROLS, _validate_batch

    names = {"eta", *(x.strip() for x in args.optimize.split(",") if x.strip())}
    unknown = sorted(names - set(CONTROLS))
    if unknown:
        raise ValueError(f"--optimize must be a comma list of {list(CONTROLS)}; got {unknown}")
    if "batch" not in names:
        given = [f for f in ("samples", "batch_min", "batch_max") if getattr(args, f) is not None]
        if given:
            flag = "--" + given[0].replace("_", "-")
            raise ValueError(f"{flag} needs --optimize batch (it sets the batch control)")
        return {}
    samples = args.samples if args.samples is not None else args.T * args.batch
    S, lo, hi = _validate_batch(
        problem, args.T, ("eta", "batch"), samples, args.batch_min, args.batch_max, None
    )
    return dict(optimize=("eta", "batch"), samples=S, batch_min=lo, batch_max=hi)


def _batch_report(problem, opt, out: Path) -> dict[str, Any]:
    """Print η(t), m(t) and what integer batches cost; write schedule.csv/.json (step, eta,
    batch; batch_int: integer batches with the same total, eta_int: the rates rescaled to keep
    η_t/m_t per step). A data loader reads m_t per step."""
    from . import results
    from .control import integer_batches
    from .dynamics import loss_curve

    T = opt.etas.size
    m_int = integer_batches(opt.batches)
    eta_int = np.minimum(opt.etas * m_int / opt.batches, opt.config["eta_max"])
    loss_int = float(loss_curve(problem, opt.etas, m_int.astype(np.float64))[-1])
    loss_scaled = float(loss_curve(problem, eta_int, m_int.astype(np.float64))[-1])
    print(f"\n{'t/T':>6s} {'eta(t)':>10s} {'m(t)':>9s}")
    for f in (0.0, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 1.0):
        t = int(round(f * (T - 1)))
        print(f"{f:6.2f} {opt.etas[t]:10.4g} {opt.batches[t]:9.4g}")
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
    results.write_text(
        out / "schedule.csv",
        ",".join(columns)
        + "\n"
        + "".join(
            f"{t},{e:.12g},{m:.12g},{mi},{ei:.12g}\n"
            for t, e, m, mi, ei in zip(*columns.values(), strict=True)
        ),
    )
    results.write_json(
        out / "schedule.json",
        {**{k: v.tolist() for k, v in columns.items()}, "samples": opt.config["samples"]},
    )
    return {"loss_integer_batches": loss_scaled, "loss_integer_batches_same_rates": loss_int}


def cmd_optimize(args: argparse.Namespace) -> dict[str, Any]:
    from . import Problem, plotting, results
    from .control import optimize_schedule
    from .schedules import FAMILIES, tune

    _check_T(args.T)
    problem = Problem(a=args.a, b=args.b, sigma=args.sigma, n_modes=args.n_modes, batch=args.batch)
    joint = _optimize_controls(args, problem)
    if joint:  # the reference schedules run at the constant batch S/T
        problem = Problem(
            a=args.a,
            b=args.b,
            sigma=args.sigma,
            n_modes=args.n_modes,
            batch=joint["samples"] / args.T,
        )
    out = args.out or Path("runs") / f"optimize_a{args.a:g}_b{args.b:g}_T{args.T}"
    for line in _theory_lines(problem):
        print(line)
    families = list(FAMILIES) if args.families == "all" else args.families.split(",")
    unknown = [f for f in families if f not in FAMILIES]
    if unknown:
        raise ValueError(
            f"--families must be 'all' or names from {sorted(FAMILIES)}; got {unknown}"
        )
    t0 = time.perf_counter()
    opt = optimize_schedule(
        problem,
        args.T,
        controls=args.controls,
        eta_max=args.eta_max,
        smoothness=args.smoothness,
        progress=True,
        **joint,
    )
    print(
        f"optimal schedule: L(T) = {opt.loss:.6g} ({opt.iterations} iterations, "
        f"projected gradient {opt.projected_gradient:.1e}, {opt.wall_time:.1f} s)"
    )
    opt.save(out / "optimal")
    from tqdm.auto import tqdm

    rows = [{"schedule": "optimal", "loss": opt.loss, "ratio_to_optimal": 1.0, "params": {}}]
    extra: dict[str, Any] = {}
    if joint:
        const = optimize_schedule(
            problem,
            args.T,
            controls=args.controls,
            eta_max=opt.config["eta_max"],
            smoothness=args.smoothness,
        )
        rows[0]["schedule"] = "optimal eta and m"
        rows.append(
            {
                "schedule": f"optimal eta at m={problem.batch:g}",
                "loss": const.loss,
                "ratio_to_optimal": const.loss / opt.loss,
                "params": {},
            }
        )
        extra = {**_batch_report(problem, opt, out), "constant_batch": const.metadata()}
    tuned = {}
    for name in tqdm(families, desc="tuning baselines", unit="family"):
        r = tune(name, problem, args.T)
        tuned[name] = {"etas": r.etas, "curve": r.curve, "loss": r.loss, "params": r.params}
    rows += [
        {
            "schedule": n,
            "loss": r["loss"],
            "ratio_to_optimal": r["loss"] / opt.loss,
            "params": r["params"],
        }
        for n, r in sorted(tuned.items(), key=lambda kv: kv[1]["loss"])
    ]
    print(f"\n{'schedule':18s} {'L(T)':>12s} {'ratio':>8s}  tuned parameters")
    for r in rows:
        params = ", ".join(f"{k}={v:.4g}" for k, v in r["params"].items())
        print(f"{r['schedule']:18s} {r['loss']:12.6g} {r['ratio_to_optimal']:8.4f}  {params}")
    csv = "schedule,loss,ratio_to_optimal,params\n" + "".join(
        f"{r['schedule']},{r['loss']:.10g},{r['ratio_to_optimal']:.6f},"
        f'"{";".join(f"{k}={v:.6g}" for k, v in r["params"].items())}"\n'
        for r in rows
    )
    results.write_text(out / "table.csv", csv)
    summary = {
        "problem": problem.config(),
        "T": args.T,
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
    if joint:
        title += f", S={joint['samples']:g} samples (constant-batch schedules at m = S/T)"
        shown[rows[1]["schedule"]] = {"etas": const.etas, "curve": const.curve, "loss": const.loss}
    fig = plotting.optimize_figure(
        {"etas": opt.etas, "curve": opt.curve, "loss": opt.loss, "batches": opt.batches},
        shown,
        title,
    )
    path = plotting.save_figure(fig, out / "optimize.png")
    files = "optimal.npz/.json, table.csv, summary.json" + (", schedule.csv/.json" if joint else "")
    print(f"\nwrote {out}/ ({files}, {path.name})")
    return summary


def _schedule_from_args(args, problem):
    from . import schedules as S

    eta = args.eta if args.eta is not None else 0.5 * problem.eta_critical()
    if not math.isfinite(eta) or eta <= 0:
        raise ValueError(f"--eta must be a finite number > 0; got {eta}")
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


def cmd_simulate(args: argparse.Namespace) -> dict[str, Any]:
    import jax

    from . import Problem, plotting, results
    from .dynamics import diverged, loss_curve
    from .simulate import sgd, theory_excess

    _check_T(args.T)
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
    for line in _theory_lines(problem):
        print(line)
    etas, eta = _schedule_from_args(args, problem)
    theory = theory_excess(problem, loss_curve(problem, etas))
    if diverged(theory):
        raise ValueError(
            f"the schedule diverges (eta={eta:g}); the largest stable constant "
            f"rate is {problem.eta_critical():.4g}"
        )
    t0 = time.perf_counter()
    mc = sgd(
        problem,
        etas,
        jax.random.key(args.seed),
        n_seeds=args.seeds,
        chunk=max(2, min(args.seeds, 16)),
        progress=True,
    )
    z = (mc.mean - theory)[1:] / np.maximum(mc.sem[1:], 1e-300)
    out = args.out or Path("runs") / f"simulate_a{args.a:g}_b{args.b:g}_T{args.T}"
    meta = {
        "problem": problem.config(),
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


def cmd_figures(args: argparse.Namespace) -> None:
    from .figures import regenerate

    regenerate(out=args.out, quick=args.quick, results_dir=args.results)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rfmodel", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("optimize", help="optimal schedule vs tuned baselines (main job)")
    _problem_args(p)
    p.add_argument(
        "--controls",
        type=int,
        default=None,
        help="K piecewise-constant controls (default: one per step)",
    )
    p.add_argument(
        "--eta-max",
        type=float,
        default=None,
        help="upper bound on η (default: per-step stability bound)",
    )
    p.add_argument("--smoothness", type=float, default=0.0, help="penalty κ (default 0)")
    p.add_argument("--families", default="all", help="comma-separated baseline families")
    p.add_argument(
        "--optimize",
        default="eta",
        help="comma list of controls to optimize: eta (always), batch (default %(default)s)",
    )
    p.add_argument(
        "--samples",
        type=float,
        default=None,
        help="sample budget S = Σ_t m_t with --optimize batch (default T·batch)",
    )
    p.add_argument("--batch-min", type=float, default=None, help="smallest batch (default 1)")
    p.add_argument(
        "--batch-max", type=float, default=None, help="largest batch (default: unbounded)"
    )
    p.set_defaults(func=cmd_optimize)

    p = sub.add_parser("simulate", help="exact recursion vs Monte-Carlo SGD")
    _problem_args(p, T=500, n_modes=200)
    p.add_argument(
        "--schedule",
        default="constant",
        choices=["constant", "cosine", "linear", "wsd", "power_law"],
    )
    p.add_argument(
        "--eta",
        type=float,
        default=None,
        help="peak learning rate (default: half the largest stable constant rate)",
    )
    p.add_argument("--seeds", type=int, default=64, help="Monte-Carlo seeds (default 64)")
    p.add_argument("--seed", type=int, default=0, help="PRNG seed")
    p.add_argument(
        "--features",
        type=int,
        default=0,
        help="N random features of the n-modes-dimensional input (0: plain model)",
    )
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("figures", help="regenerate every figure from saved results")
    p.add_argument(
        "--quick",
        action="store_true",
        help="small, fast version (CI); needs --out DIR other than the full figures",
    )
    p.add_argument("--out", type=Path, default=Path("figures"), help="figure folder")
    p.add_argument(
        "--results",
        type=Path,
        default=None,
        help="results cache (default: OUT/data, committed with the figures)",
    )
    p.set_defaults(func=cmd_figures)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except ValueError as e:
        print(f"rfmodel {args.command}: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
