"""The curriculum and preconditioning experiments' own logic (their quick runs are in the slow
tier of tests/test_figures.py): curricula on budget, the claims' verdicts, the preconditioned
chains."""

import numpy as np
import pytest

from rfmodel.experiments import curriculum, preconditioning
from rfmodel.experiments._common import make_problem


@pytest.mark.parametrize("T,frac", [(400, 0.5), (37, 0.3)])
def test_curricula_spend_the_budget(T, frac):
    qs = curriculum._curricula(T, frac)
    for name, q in qs.items():
        assert np.all((q >= 0) & (q <= 1)), name
        assert q.sum() == pytest.approx(frac * T, rel=1e-12), name
    assert np.all(np.diff(qs["ascending"]) >= 0) and np.all(np.diff(qs["descending"]) <= 0)


def _row(asc, rand=1.0):
    return {"random": {"loss": rand}, "ascending": {"loss": asc}, "descending": {"loss": 1.0}}


def test_claim_verdicts():
    fam = {
        "constant": {"last iterate": _row(0.6), "average": _row(0.7)},
        "cosine": {"last iterate": _row(1.05), "average": _row(1.0)},
        "cosine, final 30%": {"last iterate": _row(0.75), "average": _row(0.8)},
        "wsd": {"last iterate": _row(0.8), "average": _row(0.8)},
    }
    c = curriculum._claims({"families": fam})
    assert c["1"]["verdict"] == "reproduced"
    assert c["2"]["verdict"] == "reproduced: reversed under cosine"
    assert c["3"]["verdict"] == "reproduced"  # both win back > half of 0.45
    fam["constant"]["average"] = _row(0.9)
    assert curriculum._claims({"families": fam})["3"]["verdict"].startswith("partly: only final")
    fam["cosine"]["last iterate"] = _row(0.5)  # decay helps the curriculum: claim 2 fails
    assert curriculum._claims({"families": fam})["2"]["verdict"] == "contradicted"


def test_preconditioned_chains():
    cfg = preconditioning.config(quick=True)
    ch = preconditioning._chain(cfg, 1.5, 2.5, 0.5)
    p = make_problem(ch["setting"])
    assert p.precondition == 0.5 and p.b_eff == pytest.approx(1.25) and p.phase == "easy"
    plain = preconditioning._chain(cfg, 1.5, 2.5, 0.0)
    assert make_problem(plain["setting"]).config()["b"] == 2.5
    assert "precondition" not in make_problem(plain["setting"]).config()
    assert preconditioning._solvable(2.5, 0.5) and not preconditioning._solvable(2.5, 0.75)
    names = [t.name for t in preconditioning.tasks(cfg, "/nonexistent")]
    assert len(names) == 4 and names[-1].endswith("adam")  # γ = 0.75 is not solved (b_eff < 1.1)
