"""Real networks: does the schedule the fitted model recommends beat tuned cosine/WSD?

For each task (an MLP on scikit-learn's digits; a character-level transformer on Python
standard-library source; :mod:`rfmodel.experiments._nets`), trained with plain SGD:

1. constant-rate sweep run to the long horizon T, read at T/4, T/2 and T (does the best rate
   shift with T?), and cosine and WSD (linear decay over the last 20%) tuned over their peak
   rate at T (seed 0);
2. two short runs of T/4 steps (the best constant rate of the sweep at T/4, and a cosine
   decay from that rate): the curves a practitioner has after a short tuning run;
3. ``rfmodel.fit.fit_curves`` on those two runs (phase, a, b with a profile interval), then
   ``rfmodel.fit.advise`` for T (rates capped at the largest rate of the short runs);
4. the recommended schedule and the best constant/cosine/WSD trained with every seed (paired:
   seed s draws the same initialization and minibatches for every schedule).

Reported: the final loss of each (mean and spread over seeds), the ratio recommended / best tuned
per seed, the fitted phase. A negative result is reported as measured.

Usage: ``python -m rfmodel.experiments.networks [--quick]`` (or ``experiments/networks.py``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from ..results import config_key, load_valid, save_result
from ..runner import Task
from ._cli import experiment_main
from ._common import plt
from ._format import Figure, finish, md_table

__all__ = ["config", "tasks", "run_net", "summarize", "plot", "table_rows"]

GROUP = "networks"
_FAMILIES = ("constant", "cosine", "wsd")
_STAGES = ("sweep", "short_cosine", "finals")


def config(quick: bool) -> dict[str, Any]:
    """Tasks and their sweeps (quick: a tiny MLP on 300 digits, a few dozen steps)."""
    if quick:
        digits = {
            "task": "digits",
            "n_train": 300,
            "width": 16,
            "batch": 16,
            "T": 160,
            "every": 8,
            "const_lrs": [0.1, 0.4, 1.6],
            "peak_lrs": [0.4, 1.6],
            "seeds": [0, 1],
            "group": 4,
            # fewer starts, no profile, one baseline: the CI version checks the pipeline only
            "fit": {"starts": 1, "profile": False},
            "advise": {"controls": 20, "families": ["cosine"]},
        }
        return {"nets": [digits], "quick": True}
    digits = {
        "task": "digits",
        "n_train": 1500,
        "width": 128,
        "batch": 32,
        "T": 4000,
        "every": 40,
        "const_lrs": [0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56],
        "peak_lrs": [0.08, 0.16, 0.32, 0.64, 1.28, 2.56],
        "seeds": [0, 1, 2],
        "group": 8,
    }
    chars = {
        "task": "chars",
        "ctx": 32,
        "batch": 16,
        "d": 32,
        "layers": 2,
        "heads": 4,
        "val_seqs": 32,
        "T": 800,
        "every": 40,
        "const_lrs": [0.25, 0.5, 1.0, 2.0],
        "peak_lrs": [0.5, 1.0, 2.0],
        "seeds": [0, 1, 2],
        "group": 5,
    }
    noisy = {
        **digits,
        "task": "digits_noisy",
        "input_noise": 0.5,
        "eval_copies": 8,
        "const_lrs": [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28],
        "peak_lrs": [0.04, 0.08, 0.16, 0.32, 0.64, 1.28],
    }
    return {"nets": [digits, noisy, chars], "quick": False}


def _lr_arrays(T: int, family: str, peak: float) -> np.ndarray:
    from ..schedules import as_array, constant, cosine, wsd

    make = {"constant": constant(peak), "cosine": cosine(peak, T), "wsd": wsd(peak, T, decay=0.2)}
    return np.asarray(as_array(make[family], T))


def _path(results_dir: Path, net: dict[str, Any], stage: str, fp: str) -> tuple[Path, dict]:
    key = {"net": net, "stage": stage, "data": fp}
    return Path(results_dir) / GROUP / f"{net['task']}_{stage}_{config_key(key)}", key


def _fingerprint(net: dict[str, Any]) -> str:
    if net["task"] == "chars":
        import hashlib

        from ._nets import text_source

        return hashlib.sha256(text_source().encode()).hexdigest()[:16]
    return f"sklearn-{net['task']}"


def _train(task, net, lrs: list[np.ndarray], seeds: list[int]) -> np.ndarray:
    """Losses (n, T/every + 1) of runs ``lrs[i]`` with ``seeds[i]``, in batches of ``group``
    (padded, so every batch has the same shape: one compilation); diverged runs are inf."""
    from ._nets import train

    G, out = int(net["group"]), []
    for i in range(0, len(lrs), G):
        rows, ss = list(lrs[i : i + G]), list(seeds[i : i + G])
        n = len(rows)
        rows += [rows[-1]] * (G - n)
        ss += [ss[-1]] * (G - n)
        out.append(train(task, np.stack(rows), ss, int(net["every"]))[:n])
    res = np.concatenate(out)
    return np.where(np.isfinite(res), res, np.inf)


def _load_stage(results_dir, net, name, fp):
    path, key = _path(results_dir, net, name, fp)
    return load_valid(path, config=key)


def _stage(results_dir, net, name, fp, compute):
    got = _load_stage(results_dir, net, name, fp)
    if got is None:
        path, key = _path(results_dir, net, name, fp)
        arrays, meta = compute()
        save_result(path, arrays, meta, config=key)
        got = load_valid(path, config=key)
    return got


def run_net(results_dir: str, net: dict[str, Any]) -> dict[str, Any]:
    """Every stage of one task (each saved as it finishes; a rerun resumes)."""
    from ..fit import Run, advise, fit_curves
    from ._nets import load_task

    t0 = time.perf_counter()
    fp = _fingerprint(net)
    task = load_task(net)
    T, every, seeds = int(net["T"]), int(net["every"]), [int(s) for s in net["seeds"]]
    Ts = int(T // 4)

    def sweep():
        runs = [("constant", v) for v in net["const_lrs"]]
        runs += [(f, v) for f in ("cosine", "wsd") for v in net["peak_lrs"]]
        loss = _train(task, net, [_lr_arrays(T, f, v) for f, v in runs], [seeds[0]] * len(runs))
        return {"loss": loss}, {"runs": runs, "seconds": time.perf_counter() - t0}

    sw, swm = _stage(results_dir, net, "sweep", fp, sweep)
    runs = [tuple(r) for r in swm["runs"]]
    n_c = len(net["const_lrs"])
    at = {h: h // every for h in (Ts, T // 2, T)}
    best_short = int(np.argmin(sw["loss"][:n_c, at[Ts]]))
    lr0 = float(net["const_lrs"][best_short])

    def short():
        peak = lr0
        for _ in range(6):  # halve the peak until the short cosine run makes progress
            loss = _train(task, net, [_lr_arrays(Ts, "cosine", peak)], [seeds[0]])
            if np.all(np.isfinite(loss)) and loss[0, -1] < 0.5 * loss[0, 0]:
                break
            peak /= 2
        return {"loss": loss[0]}, {"peak": peak}

    sh, shm = _stage(results_dir, net, "short_cosine", fp, short)
    steps = np.arange(0, Ts + 1, every, dtype=np.float64)
    batch = np.full(steps.size, float(net["batch"]))
    const_loss = sw["loss"][best_short, : at[Ts] + 1]
    cos_lr = np.append(_lr_arrays(Ts, "cosine", shm["peak"]), 0.0)[steps.astype(int)]
    curves = [
        Run("constant", steps, np.full(steps.size, lr0), const_loss, batch),
        Run("cosine", steps, cos_lr, sh["loss"], batch),
    ]
    fit = fit_curves(curves, **net.get("fit", {}))
    adv = advise(fit, T, **net.get("advise", {}))
    best = {}
    for fam in _FAMILIES:
        idx = [i for i, r in enumerate(runs) if r[0] == fam]
        j = idx[int(np.argmin(sw["loss"][idx, -1]))]
        best[fam] = {"lr": float(runs[j][1]), "seed0": sw["loss"][j]}

    def finals():
        lrs = [adv.lr] * len(seeds)
        lrs += [_lr_arrays(T, f, best[f]["lr"]) for f in _FAMILIES for _ in seeds[1:]]
        ss = list(seeds) + [s for _ in _FAMILIES for s in seeds[1:]]
        loss = _train(task, net, lrs, ss)
        k = len(seeds) - 1
        arrays = {"recommended": loss[: len(seeds)], "recommended_lr": adv.lr}
        for i, f in enumerate(_FAMILIES):
            arrays[f] = np.concatenate([best[f]["seed0"][None], loss[len(seeds) + i * k :][:k]])
        arrays["predicted"] = adv.predicted[::every] if fit.stride == 1 else adv.predicted
        return arrays, {
            "fit": fit.to_dict(),
            "advice": adv.table(),
            "best": {f: best[f]["lr"] for f in _FAMILIES},
            "short_peak": shm["peak"],
            "lr0": lr0,
            "seconds": time.perf_counter() - t0,
        }

    _stage(results_dir, net, "finals", fp, finals)
    return {"seconds": time.perf_counter() - t0}


def tasks(cfg: dict[str, Any], results_dir: Path) -> list[Task]:
    """One task per network (its stages run in order and are saved as they finish)."""
    out = []
    for net in cfg["nets"]:
        try:
            fp = _fingerprint(net)
            path, key = _path(results_dir, net, "finals", fp)
            done = load_valid(path, config=key) is not None
        except ImportError:  # no scikit-learn: the task says so when it runs
            done = False
        steps = net["T"] * (len(net["const_lrs"]) + 2 * len(net["peak_lrs"]) + 4 * 3)
        cost = steps * (50 if net["task"] == "chars" else 1)
        out.append(
            Task(
                GROUP,
                "run_net",
                {"results_dir": str(results_dir), "net": net},
                name=f"{GROUP}/{net['task']}",
                cost=cost,
                done=done,
            )
        )
    return out


def _load(cfg, results_dir) -> dict[str, Any]:
    out = {}
    for net in cfg["nets"]:
        fp = _fingerprint(net) if net["task"] != "chars" else _cached_fp(results_dir, net)
        if fp is None:
            continue
        got = [_load_stage(results_dir, net, s, fp) for s in _STAGES]
        if all(g is not None for g in got):
            out[net["task"]] = {"net": net, "sweep": got[0], "short": got[1], "finals": got[2]}
    return out


def _cached_fp(results_dir, net) -> str | None:
    """The text fingerprint of saved chars results (redrawing needs no recomputation)."""
    from ..results import read_json

    for p in sorted((Path(results_dir) / GROUP).glob("chars_finals_*.json")):
        try:
            fp = read_json(p)["_rfmodel"]["config"]["data"]
        except (KeyError, TypeError, ValueError, OSError):
            continue
        if _path(results_dir, net, "finals", fp)[0].with_suffix(".json") == p:
            return fp
    return None


def _spread(x: np.ndarray) -> dict[str, float]:
    x = np.asarray(x, np.float64)
    return {"mean": float(np.mean(x)), "min": float(np.min(x)), "max": float(np.max(x))}


def summarize(cfg: dict[str, Any], results_dir: Path) -> dict[str, Any]:
    """Per task: best constant rate per horizon, final losses over seeds, ratios, the fit."""
    out: dict[str, Any] = {"tasks": {}, "compute_seconds": 0.0}
    for name, d in _load(cfg, Path(results_dir)).items():
        net, (sw, _), (fa, fm) = d["net"], d["sweep"], d["finals"]
        T, every = net["T"], net["every"]
        n_c = len(net["const_lrs"])
        best_lr = {}
        for h in (T // 4, T // 2, T):
            col = sw["loss"][:n_c, h // every]
            best_lr[h] = float(net["const_lrs"][int(np.argmin(col))])
        finals = {k: fa[k][:, -1] for k in ("recommended", *_FAMILIES)}
        tuned = np.min(np.stack([finals[f] for f in _FAMILIES]), axis=0)  # best per seed
        best_fam = min(_FAMILIES, key=lambda f: float(np.mean(finals[f])))
        ratio_best = finals["recommended"] / finals[best_fam]
        fit = fm["fit"]
        out["tasks"][name] = {
            "T": T,
            "best_constant_lr": best_lr,
            "final": {k: _spread(v) for k, v in finals.items()},
            "ratio_to_best_family": _spread(ratio_best),
            "ratio_to_best_per_seed": _spread(finals["recommended"] / tuned),
            "best_family": best_fam,
            "best_lrs": fm["best"],
            "predicted_final": float(fa["predicted"][-1]),
            "fit": {
                k: fit[k]
                for k in (
                    "a",
                    "b",
                    "a_se",
                    "b_se",
                    "a_minus_b_interval",
                    "phase",
                    "phase_certain",
                    "phase_pvalue",
                    "rms_log_residual",
                    "lr_scale",
                    "loss_scale",
                    "floor",
                    "sigma",
                )
            },
            "seeds": len(net["seeds"]),
        }
        out["compute_seconds"] += float(fm["seconds"])
    out["readme"] = _readme(out["tasks"])
    return out


def _cell(final: dict[str, dict[str, float]]):
    def cell(k: str) -> str:
        v = final[k]
        return f"{v['mean']:.4f} [{v['min']:.4f}, {v['max']:.4f}]"

    return cell


def _task_cells(name: str, s: dict[str, Any]) -> tuple[Any, ...]:
    """One row of the networks table: final losses, the recommendation's ratio, the fit."""
    cell = _cell(s["final"])
    r, fit = s["ratio_to_best_family"], s["fit"]
    lo, hi = fit["a_minus_b_interval"]
    return (
        name,
        s["T"],
        " → ".join(f"{v:g}" for v in s["best_constant_lr"].values()),
        *(cell(k) for k in ("recommended", "constant", "cosine", "wsd")),
        f"{r['mean']:.3f} [{r['min']:.3f}, {r['max']:.3f}] vs {s['best_family']}",
        f"{fit['a']:.2f} ± {fit['a_se']:.2f}, {fit['b']:.2f} ± {fit['b_se']:.2f}",
        f"{fit['phase']} ({fit['a'] - fit['b']:+.2f} [{lo:+.2f}, {hi:+.2f}])",
    )


def _readme(tasks: dict[str, Any]) -> str:
    if not tasks:
        return ""
    lines = [
        "**Real networks** (plain SGD; `rfmodel advise` fitted on two runs of T/4 steps, "
        "then used at T; baselines tuned over their peak rate at T; final loss, mean [min, max] "
        "over paired seeds):",
        "",
    ]
    head = ("task", "T", "best constant η at T/4, T/2, T", "recommended", "best constant")
    tail = ("recommended / best tuned", "fitted a, b", "phase (a − b, 95%)")
    rows = [_task_cells(name, s) for name, s in tasks.items()]
    lines += md_table((*head, "best cosine", "best WSD", *tail), rows)
    verdicts = []
    for name, s in tasks.items():
        r = s["ratio_to_best_family"]["mean"]
        verdicts.append(
            f"{name}: the recommendation is {abs(r - 1):.1%} "
            f"{'better' if r < 1 else 'worse'} than the best tuned family "
            f"({s['best_family']}); model-predicted final loss {s['predicted_final']:.4f}"
        )
    lines += ["", "Verdict: " + "; ".join(verdicts) + "."]
    return "\n".join(lines)


def plot(
    cfg: dict[str, Any], summary: dict[str, Any], results_dir: Path, out: Path
) -> list[Figure]:
    """One figure per task: loss vs constant rate at three horizons, the schedules, the curves."""
    figs = []
    for name, d in _load(cfg, Path(results_dir)).items():
        net, (sw, _), (sh, _), (fa, fm) = d["net"], d["sweep"], d["short"], d["finals"]
        T, every, n_c = net["T"], net["every"], len(net["const_lrs"])
        fig, axs = plt().subplots(1, 3, figsize=(16, 4.2))
        for h in (T // 4, T // 2, T):
            axs[0].plot(net["const_lrs"], sw["loss"][:n_c, h // every], "o-", label=f"T = {h}")
        axs[0].set(
            xscale="log",
            yscale="log",
            xlabel="constant learning rate",
            ylabel="final loss",
            title=f"{name}: constant-rate sweep (seed 0)",
        )
        axs[0].legend(fontsize=8)
        steps = np.arange(0, T + 1, every)
        axs[1].plot(fa["recommended_lr"], label="recommended (rfmodel advise)", lw=2)
        for f in _FAMILIES:
            axs[1].plot(_lr_arrays(T, f, fm["best"][f]), label=f"best {f}", lw=1)
        axs[1].set(xlabel="step", ylabel="learning rate", title="schedules at T")
        axs[1].legend(fontsize=8)
        for i, k in enumerate(("recommended", *_FAMILIES)):
            m = np.mean(fa[k], axis=0)
            axs[2].plot(steps, m, color=f"C{i}", label=f"{k}: {m[-1]:.4f}")
            axs[2].fill_between(steps, fa[k].min(0), fa[k].max(0), color=f"C{i}", alpha=0.2)
        if fa["predicted"].shape[0] == steps.size:
            axs[2].plot(steps, fa["predicted"], "k--", lw=1, label="fitted model, recommended")
        axs[2].plot(steps[: sh["loss"].size], sh["loss"], "k:", lw=1, label="short cosine (fit)")
        fit = fm["fit"]
        axs[2].set(
            yscale="log",
            xlabel="step",
            ylabel="loss",
            title=f"fit: a={fit['a']:.2f}, b={fit['b']:.2f} ({fit['phase']}); "
            f"{len(net['seeds'])} seeds",
        )
        axs[2].legend(fontsize=7)
        figs.append(
            finish(
                fig,
                out,
                f"networks_{name}.png",
                f"{name}: loss vs constant rate at T/4, T/2, T; the recommended "
                "schedule (fitted on two short runs) against the best tuned constant, cosine "
                "and WSD; loss curves over seeds with the model's prediction.",
            )
        )
    return figs


def table_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per task: recommended / best tuned family, and the fitted phase."""
    rows = []
    for name, s in summary["tasks"].items():
        r = s["ratio_to_best_family"]
        fit = s["fit"]
        lo, hi = fit["a_minus_b_interval"]
        rows.append(
            {
                "quantity": "network: loss recommended / best tuned schedule",
                "setting": f"{name}, T={s['T']}, {s['seeds']} seeds",
                "measured": f"{r['mean']:.3f} [{r['min']:.3f}, {r['max']:.3f}] "
                f"vs {s['best_family']}",
                "T_range": "one T",
                "drift": f"fit: {fit['phase']}, a − b = {fit['a'] - fit['b']:+.2f} "
                f"[{lo:+.2f}, {hi:+.2f}]",
                "predicted": "≤ 1 if the power-law model describes the network",
                "verdict": "better"
                if r["mean"] < 1
                else ("within 1%" if r["mean"] < 1.01 else "worse"),
            }
        )
    return rows


main = experiment_main(GROUP, __doc__)

if __name__ == "__main__":
    main()
