"""Property-based tests (hypothesis) over the parameter space of Problem, loss_curve,
optimize_schedule and the CLI: every input either works (finite numbers, never NaN) or is
refused up front with a ValueError / exit status 2 that names the parameter."""

import math
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rfmodel import Problem, loss_curve
from rfmodel.cli import main
from rfmodel.control import KKT_TOLERANCE, optimize_schedule

FAST = settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
SLOW = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
#: The default suite runs few examples; ``-m slow`` runs many.
PROFILES = [
    pytest.param(FAST, id="fast"),
    pytest.param(SLOW, id="many", marks=pytest.mark.slow),
]


def _with(fast, slow):
    """PROFILES, each with one more parameter (its size)."""
    return [
        pytest.param(FAST, fast, id="fast"),
        pytest.param(SLOW, slow, id="many", marks=pytest.mark.slow),
    ]


wild = st.floats(allow_nan=True, allow_infinity=True)


def _named(err: Exception, names) -> bool:
    return any(n in str(err) for n in names)


# ----------------------------------------------------------------------------- Problem
problem_kwargs = st.fixed_dictionaries(
    {
        "a": st.one_of(st.floats(0.5, 60), wild),
        "b": st.one_of(st.floats(0.5, 60), wild),
        "sigma": st.one_of(st.floats(-1, 10), st.floats(1e90, 1e300), wild),
        "n_modes": st.one_of(st.integers(-5, 3000), st.integers(10**3, 10**16), wild),
        "batch": st.one_of(st.floats(0.5, 1e6), st.integers(1, 10**400), wild),
        "n_exact": st.one_of(st.integers(-2, 300), st.floats(0, 300)),
        "bins_per_decade": st.one_of(st.floats(-1, 200), wild),
    }
)


def check_problem(kw):
    try:
        p = Problem(**kw)
    except ValueError as e:
        assert _named(e, kw), e
        return
    for x in (p.lam, p.c0, p.weight):
        assert np.all(np.isfinite(x))
    assert np.all(p.lam > 0) and np.all(p.c0 >= 0) and np.all(p.weight > 0)
    assert math.isfinite(p.initial_loss) and p.initial_loss > 0
    eta_c = p.eta_critical()
    assert 0 < eta_c <= p.eta_mode_bound() and math.isfinite(eta_c)


@pytest.mark.parametrize("profile", PROFILES)
def test_problem_works_or_names_the_parameter(profile):
    profile(given(problem_kwargs)(check_problem))()


# ----------------------------------------------------------------------------- loss_curve
small_problem = st.builds(
    Problem,
    a=st.floats(1.05, 6),
    b=st.floats(1.05, 6),
    sigma=st.floats(0, 3),
    n_modes=st.integers(1, 3000),
    batch=st.floats(1, 64),
    n_exact=st.integers(1, 200),
)
rate = st.one_of(st.floats(0, 3), st.floats(-1, 1e300), wild)


def check_curve(p, etas, batches):
    try:
        curve = loss_curve(p, np.array(etas), None if batches is None else np.array(batches))
    except ValueError as e:
        assert _named(e, ("etas", "batches")), e
        return
    assert curve.shape == (len(etas) + 1,) and not np.any(np.isnan(curve))
    assert np.all(curve >= 0)  # finite or +inf (diverged), never NaN
    assert curve[0] == pytest.approx(p.initial_loss, rel=1e-12)


def _schedules(n):
    batches = st.lists(st.one_of(st.floats(0, 100), wild), min_size=0, max_size=n)
    return small_problem, st.lists(rate, min_size=0, max_size=n), st.one_of(st.none(), batches)


@pytest.mark.parametrize("profile,n", _with(40, 200))
def test_loss_curve_is_never_nan(profile, n):
    profile(given(*_schedules(n))(check_curve))()


# ----------------------------------------------------------------------------- solver
solver_kwargs = st.fixed_dictionaries(
    {
        "T": st.one_of(st.integers(1, 40), st.integers(-3, 0), st.floats(1, 40)),
        "controls": st.one_of(st.none(), st.integers(-2, 45)),
        "eta_max": st.one_of(st.none(), st.floats(-1, 10), st.just(1e-300), wild),
        "smoothness": st.one_of(st.floats(0, 10), st.floats(-1, 0), wild),
        "init": st.one_of(st.none(), st.floats(-0.5, 5), wild),
        "monotone": st.booleans(),
    }
)
SOLVER_NAMES = ("T", "controls", "eta_max", "smoothness", "init", "monotone")


def check_solver(p, kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "not a first-order optimum"
        try:
            r = optimize_schedule(p, **kw, maxiter=300)
        except ValueError as e:
            assert _named(e, SOLVER_NAMES), e
            return
    T = kw["T"]
    eta_max = p.eta_mode_bound() if kw["eta_max"] is None else kw["eta_max"]
    assert r.etas.shape == (T,) and np.all(np.isfinite(r.etas)) and np.all(r.etas >= 0)
    assert np.all(r.etas <= eta_max * (1 + 1e-12))
    assert np.all(np.isfinite(r.curve)) and r.loss < r.curve[0]  # it trained
    assert r.message and (not r.converged or r.projected_gradient <= KKT_TOLERANCE)
    if kw["monotone"]:
        u = r.controls
        assert np.all(np.diff(u[int(np.argmax(u)) :]) <= 1e-12 * u.max())


@pytest.mark.parametrize("profile", PROFILES)
def test_optimize_schedule_works_or_names_the_parameter(profile):
    profile(given(small_problem, solver_kwargs)(check_solver))()


# ----------------------------------------------------------------------------- CLI
flag_value = st.one_of(
    st.floats(-2, 8).map(lambda x: f"{x:.3g}"),
    st.integers(-3, 10**6).map(str),
    st.sampled_from(["nan", "inf", "-inf", "1e400", "abc", "", "2**70", "1e-300", "0"]),
)
FLAGS = ["--a", "--b", "--sigma", "--batch", "--n-modes", "--controls", "--eta-max", "--smoothness"]


def check_cli(flags, tmp_path, capsys):
    argv = ["optimize", "--T", "30", "--families", "constant", "--quiet", "--out", str(tmp_path)]
    for name, value in flags.items():
        argv += [f"{name}={value}"]
    if "--n-modes" not in flags:
        argv += ["--n-modes", "40"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            rc = main(argv)
        except SystemExit as e:  # argparse's exit for a malformed flag
            rc = e.code
    err = capsys.readouterr().err
    assert rc in (0, 2), (argv, err)
    if rc == 2:
        assert "error:" in err and "Traceback" not in err
        names = [*FLAGS, "a=", "b=", "sigma", "batch", "n_modes", "n_exact", "eta_max", "controls"]
        assert any(n in err for n in names), err
    else:
        from rfmodel.results import read_json

        table = read_json(tmp_path / "summary.json")["table"]
        assert all(math.isfinite(r["loss"]) and r["loss"] > 0 for r in table)


@pytest.mark.parametrize("profile,examples", _with(6, 80))
def test_cli_works_or_exits_2_naming_the_flag(profile, examples, tmp_path_factory, capsys):
    flags = st.dictionaries(st.sampled_from(FLAGS), flag_value, max_size=4)

    def check(flags):
        check_cli(flags, tmp_path_factory.mktemp("cli"), capsys)

    settings(profile, max_examples=examples)(given(flags)(check))()
