"""The real tasks of the practitioner's benchmark, small: data, models, paired seeds."""

import sys

import numpy as np
import pytest

from rfmodel.experiments import _nets

TINY = {"task": "digits", "n_train": 100, "width": 8, "batch": 8}


@pytest.mark.slow
def test_training_is_paired_by_seed_and_learns():
    task = _nets.load_task(TINY)
    lrs = np.stack([np.full(40, 0.3), np.full(40, 0.3), np.linspace(0.3, 0.0, 40)])
    loss = _nets.train(task, lrs, [0, 0, 1], every=10)
    assert loss.shape == (3, 5) and loss.dtype == np.float64
    np.testing.assert_array_equal(loss[0], loss[1])  # same seed: same init and minibatches
    assert loss[0, 0] == pytest.approx(np.log(10), rel=0.1)  # a fresh 10-class classifier
    assert loss[0, -1] < 0.8 * loss[0, 0]
    with pytest.raises(ValueError, match="multiple of every"):
        _nets.train(task, lrs[:, :35], [0, 0, 1], every=10)


def test_noisy_digits_and_chars_tasks():
    noisy = _nets.load_task({**TINY, "task": "digits_noisy", "input_noise": 0.5, "eval_copies": 3})
    assert noisy["data"]["ex"].shape == (300, 64)
    chars = _nets.load_task(
        {"task": "chars", "ctx": 16, "batch": 4, "d": 16, "layers": 1, "heads": 2, "val_seqs": 4}
    )
    tok = chars["data"]["train"]
    assert tok.min() >= 0 and tok.max() <= 96 and tok.size > 100_000
    assert chars["data"]["vx"].shape == (4, 16)
    assert (
        chars["fingerprint"]
        == _nets.load_task(
            {
                "task": "chars",
                "ctx": 16,
                "batch": 4,
                "d": 16,
                "layers": 1,
                "heads": 2,
                "val_seqs": 4,
            }
        )["fingerprint"]
    )
    with pytest.raises(ValueError, match="task must be"):
        _nets.load_task({"task": "mnist"})


def test_missing_scikit_learn_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError, match=r"rfmodel\[nets\]"):
        _nets.load_task(TINY)
