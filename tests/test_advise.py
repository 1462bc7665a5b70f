"""Advice from a fitted model (rfmodel.practice.advise, docs/theory.md §9.6): the trusted shapes
without pilots, the ensemble, anchor and calibrated prediction on exact pilots, the caps from
failed pilots, the refusal when the model does not describe the pilots, the written files."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rfmodel.practice import Run, advise, advise_runs, fit_curves, pilot_status, synthetic_runs
from rfmodel.practice.advise import EDGE_TOL, PRACTICE_DECAY, REFUSE_PREDE, RISK_TOL
from rfmodel.schedules import as_array, cosine, wsd

TRUE = {"a": 2.2, "b": 1.4, "sigma": 0.3, "lr_scale": 2.0, "loss_scale": 2.0, "floor": 0.1}
N0 = 200  # pilot horizon


def _sweep(peaks, steps=N0, noise=0.003, seed=3):
    sch = {f"cos{p:g}": np.asarray(as_array(cosine(p, steps), steps)) for p in peaks}
    return synthetic_runs(**TRUE, steps=steps, every=10, noise=noise, seed=seed, schedules=sch)


def _true_final(lr) -> float:
    """The exact model's final loss under per-update rates ``lr`` (noise-free)."""
    (r,) = synthetic_runs(**TRUE, steps=len(lr), every=len(lr), noise=0.0, schedules={"x": lr})
    return float(r.loss[-1])


@pytest.fixture(scope="module")
def fitted():
    return fit_curves(synthetic_runs(**TRUE, steps=1000, noise=0.01, seed=1))


def test_without_pilots_the_advice_is_a_trusted_shape_and_is_written(fitted, tmp_path):
    """No runs: no leave-one-out check, so the untested free-form optimum is not taken; the
    chosen shape is tuned on the fit, risk-averse within RISK_TOL of the fit's tuned cosine; the
    free-form optimum is at least as good as every tuned family on the fit."""
    T = 3000
    adv = advise(fitted, T, families=("constant", "cosine"))
    assert adv.choice in ("cosine", "wsd") and not adv.refused
    assert "untested" in adv.reason
    assert adv.lr.shape == (T,) and np.max(adv.lr) <= adv.lr_max * (1 + 1e-9)
    assert adv.calibration == 1.0 and adv.loss == adv.predicted[-1]
    np.testing.assert_allclose(fitted.predict(adv.lr)[-1], adv.loss, rtol=1e-9)
    c = adv.candidates
    assert c[adv.choice].predicted == min(c["cosine"].predicted, c["wsd"].predicted)
    base = adv.baselines["cosine"]["loss"]
    assert base <= c["cosine"].predicted <= base * (1 + RISK_TOL) * (1 + 2e-3)
    best_family = min(b["loss"] for b in adv.baselines.values())
    assert c["optimal"].predicted <= best_family * (1 + 1e-3)

    paths = adv.write(tmp_path)
    assert [p.name for p in paths] == ["schedule.csv", "schedule.py", "advice.json"]
    ns: dict = {"__file__": str(tmp_path / "schedule.py")}
    exec((tmp_path / "schedule.py").read_text(), ns)
    got = np.asarray(jax.vmap(ns["schedule"])(jnp.arange(T)))
    np.testing.assert_allclose(got, adv.lr, rtol=1e-6)


@pytest.mark.slow  # default tier under 4 min on 2 cores (measured cold)
def test_exact_pilots_give_an_anchored_calibrated_advice_that_beats_the_held_peak():
    """Pilots from the model itself (an LR sweep of cosines at N0, 0.3% noise): every
    leave-one-out prediction within REFUSE_PREDE, the anchor near 1, the predicted final loss
    within 1% of the exact one at 4·N0, and by the exact model the advice within the risk
    tolerance (RISK_TOL, the price of preferring the lower of two equally predicted peaks) of
    the best cosine at T under the cap (the largest pilot rate) and of the practitioners' rule
    (a cosine at the best pilot's peak).
    Measured: 0.09% prediction error; 1.004x both."""
    runs = _sweep([0.05, 0.15, 0.45])
    T = 4 * N0
    adv = advise_runs(runs, T)
    assert not adv.refused and adv.status == {r.name: "ok" for r in runs}
    assert len(adv.loo_prede) == 3 and max(adv.loo_prede.values()) < REFUSE_PREDE
    assert 0.5 < adv.anchor < 2.0
    assert np.max(adv.lr) <= 0.45 * (1 + 1e-9)  # no rate above the largest pilot's
    truth = _true_final(adv.lr)
    assert abs(adv.loss / truth - 1) < 0.01, (adv.loss, truth)
    best = min(runs, key=lambda r: r.loss[-1])
    held = _true_final(np.asarray(as_array(cosine(float(np.nanmax(best.lr)), T), T)))
    tuned = min(_true_final(np.asarray(as_array(cosine(p, T), T))) for p in (0.2, 0.3, 0.45))
    bound = (1 + RISK_TOL) * 1.003
    assert truth <= held * bound and truth <= tuned * bound, (truth, held, tuned)

    # a caution exactly when the advice runs at or above some rate above the next lower pilot
    # peak (0.15) for more updates than every pilot did
    def held(lr, level):
        return int(np.sum(np.asarray(lr) >= level * (1 - EDGE_TOL)))

    levels = np.geomspace(0.15 * (1 + 2 * EDGE_TOL), 0.45, 64)
    longer = [held(adv.lr, v) > max(held(r.rates(N0)[0], v) for r in runs) for v in levels]
    assert (adv.caution is not None) == any(longer)
    if adv.caution is not None:
        assert adv.caution["peak"] == pytest.approx(0.15)
        assert adv.caution["held_by_advice"] == held(adv.lr, adv.caution["level"])
    # a tested model overrules the practitioner's schedule only by more than its error
    margin = np.log1p(max(max(adv.loo_prede.values()), 0.01))
    c = adv.candidates
    assert adv.choice != "practice" and c["practice"].score - c[adv.choice].score > margin


def test_an_untested_model_gives_the_practitioners_schedule():
    """Two trained pilots leave nothing to check the model against: whatever it predicts, the
    advice is WSD with a PRACTICE_DECAY linear decay at the sweep's best peak (here its top),
    under the same name in the reason."""
    runs = _sweep([0.05, 0.15])
    T = 4 * N0
    adv = advise_runs(runs, T)
    assert adv.choice == "practice" and not adv.refused and not adv.loo_prede
    assert "untested" in adv.reason and "practitioner" in adv.reason
    want = np.asarray(as_array(wsd(0.15, T, decay=PRACTICE_DECAY), T))
    np.testing.assert_allclose(adv.lr, want, rtol=1e-12)
    assert adv.candidates["practice"].params == {"peak": 0.15, "decay": PRACTICE_DECAY}
    # the sweep's best is at its top edge: the next pilot goes above it
    assert adv.next_pilot["peak"] == pytest.approx(0.45)
    # and the advice holds 0.15, the largest rate that trained, for 80% of 4·N0 updates where
    # the cosine pilot held it (within EDGE_TOL) for a few: a caution, falling back on 0.05
    c = adv.caution
    assert c is not None and c["peak"] == pytest.approx(0.05) and "0.15" in c["why"]
    assert c["level"] == pytest.approx(0.15)
    n_decay = EDGE_TOL * PRACTICE_DECAY * T  # decay updates still within EDGE_TOL of the peak
    assert 0.8 * T <= c["held_by_advice"] <= 0.8 * T + n_decay + 1
    assert 0 < c["held_by_pilots"] < 0.1 * N0
    assert adv.to_dict()["caution"] == c


def test_an_untested_model_names_the_pilot_that_would_let_it_be_checked():
    """An LR sweep of cosines whose top diverged (the best peak bracketed) and a constant at the
    middle rate that blew up: two trained pilots. The pilot that helps most is that constant
    again at the largest rate that trained below it (a third trained pilot makes the
    leave-one-out check possible)."""
    runs = _sweep([0.05, 0.15])
    st, batch = runs[1].step, runs[1].batch
    top = Run("cos1.35", st, 9.0 * runs[1].lr, np.exp(st / 20), batch)
    const = Run("const", st, np.full(st.size, 0.15), np.exp(st / 50), batch)
    adv = advise_runs([*runs, top, const], 4 * N0)
    assert adv.status["const"] == "diverged" and adv.choice == "practice"
    nxt = adv.next_pilot
    assert nxt["peak"] == pytest.approx(0.05) and "const" in nxt["schedule"]
    assert "only 2 pilots trained" in nxt["why"]


def test_left_out_fits_are_made_like_the_given_fit(fitted, monkeypatch):
    """advise(fit, runs=...) fits each pilot-less subset like ``fit``: its floor and κ held at
    the given value when it was held (a fit read from ``rfmodel fit --kappa 1 --json``), without
    the profile of a − b (which never moves the fit)."""
    import importlib
    from dataclasses import replace

    advise_mod = importlib.import_module("rfmodel.practice.advise")  # the module, not advise()

    seen = []

    def record(runs, **kw):
        seen.append(kw)
        return fitted

    monkeypatch.setattr(advise_mod, "fit_curves", record)
    runs = _sweep([0.05, 0.15, 0.45])
    held = replace(fitted, kappa=2.5, fit_kappa=False, fit_floor=False)
    advise(held, 2 * N0, runs=runs, controls=8, families=("cosine",))
    assert len(seen) == 3
    assert all(k == {"floor": False, "noise": "free", "kappa": 2.5, "profile": False} for k in seen)


def test_pilot_status_names_every_failure():
    """A diverged loss is logged as inf (NaN is a row without a loss, a schedule-only row)."""
    st = np.arange(0, 101, 10.0)
    lr = np.full(st.size, 0.1)
    fall = 1.0 / (1 + st / 20)
    runs = [
        Run("ok", st, lr, fall, 1.0),
        Run("inf", st, 2 * lr, np.where(st > 50, np.inf, fall), 1.0),
        Run("up", st, 3 * lr, fall * np.exp(st / 20), 1.0),
        Run("rebound", st, 1.5 * lr, np.where(st > 80, 0.5, fall), 1.0),
        Run("flat", st, 0.01 * lr, 1.0 - 0.001 * st / 100, 1.0),
    ]
    assert pilot_status(runs) == {
        "ok": "ok",
        "inf": "diverged",
        "up": "diverged",
        "rebound": "unstable",
        "flat": "no progress",
    }


@pytest.mark.slow
def test_a_diverged_pilot_caps_the_advice_and_two_are_needed():
    """A pilot that blew up at a rate bounds every schedule that holds its peak as long, at the
    largest rate that trained below it; fewer than two trained pilots is an error naming them."""
    runs = _sweep([0.05, 0.15, 0.45])
    bad = runs[2]
    blown = Run("blown", bad.step, 4 * bad.lr, bad.loss * np.exp(bad.step / 50), bad.batch)
    adv = advise_runs([*runs, blown], 4 * N0)
    assert adv.status["blown"] == "diverged"
    assert np.max(adv.lr) <= 0.45 * (1 + 1e-9)
    with pytest.raises(
        ValueError, match=r"need at least 2 pilot runs that trained.*blown: diverged"
    ):
        advise_runs([runs[0], blown], 4 * N0)


@pytest.mark.slow
def test_pilots_the_model_cannot_describe_are_refused():
    """One pilot's losses 30% above the model's (as if it trained on other data): the run left
    out is mispredicted far beyond REFUSE_PREDE, so the advice refuses the model and stretches
    the best pilot's schedule to T."""
    runs = _sweep([0.05, 0.15, 0.45])
    r = runs[1]
    runs[1] = Run(r.name, r.step, r.lr, 1.3 * r.loss, r.batch)
    T = 4 * N0
    adv = advise_runs(runs, T)
    assert adv.status == {r.name: "ok" for r in runs}
    assert adv.refused and adv.choice == "pilot" and "refused" in adv.reason
    assert max(adv.loo_prede.values()) > REFUSE_PREDE
    best = min(runs, key=lambda r: r.loss[-1])
    np.testing.assert_allclose(np.max(adv.lr), np.nanmax(best.lr), rtol=1e-6)
    # stretched: the same shape on the longer horizon
    np.testing.assert_allclose(adv.lr[:: T // N0][:N0], best.rates(N0)[0], rtol=0.05, atol=1e-3)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"T": 1}, "T must be an integer >= 2; got T=1"),
        ({"controls": 0}, "controls must be an integer >= 1 or None; got controls=0"),
        ({"controls": 2.5}, "controls must be an integer >= 1 or None; got controls=2.5"),
        ({"batch": 0.5}, "batch must be a finite number >= 1; got batch=0.5"),
        ({"batch": float("nan")}, "batch must be a finite number; got batch=nan"),
        ({"lr_max": -1}, "lr_max must be a finite number > 0; got lr_max=-1"),
        ({"lr_max": "x"}, "lr_max must be a finite number > 0; got lr_max='x'"),
        ({"families": ("nope",)}, "families must be names from"),
    ],
)
def test_bad_arguments_are_refused_before_any_fit(kwargs, needle):
    """advise_runs checks its arguments before fitting the pilots (no fit: well under 0.5 s)."""
    import time

    runs = synthetic_runs(steps=100, every=10)
    kw = {"T": 400, **kwargs}
    t0 = time.perf_counter()
    with pytest.raises(ValueError) as e:
        advise_runs(runs, kw.pop("T"), **kw)
    assert needle in str(e.value), str(e.value)
    assert time.perf_counter() - t0 < 0.5
