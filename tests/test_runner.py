"""The task runner: local worker processes and Ray give the same saved results."""

import json
import os
import shutil

import numpy as np
import pytest

from rfmodel.experiments import load_experiment
from rfmodel.runner import Task, run_tasks


def test_run_tasks_reports_failures_after_running_the_rest():
    good = Task("phase_diagram", "config", {"quick": True}, name="good", cost=1.0)
    bad = Task("phase_diagram", "config", {"quick": True, "nope": 1}, name="bad", cost=2.0)
    done = Task("phase_diagram", "config", {"quick": True}, name="skipped", done=True)
    with pytest.raises(RuntimeError, match="bad"):
        run_tasks([good, bad, done], workers=1, progress=False, log=lambda s: None)
    res = run_tasks([good, done], workers=1, progress=False)
    assert res["run"] == ["good"] and res["results"]["good"]["quick"] is True
    for bad_workers in (0, 1.5, True):
        with pytest.raises(ValueError, match="workers"):
            run_tasks([good], workers=bad_workers, progress=False)
    with pytest.raises(ValueError, match="backend"):
        run_tasks([good], backend="dask", progress=False)


def _two_points(results_dir):
    """Two grid points of the quick phase diagram (the cheapest), as tasks into results_dir."""
    pd = load_experiment("phase_diagram")
    cfg = {**pd.config(True), "a": [2.3], "b": [1.4, 3.2], "Ts": [100, 200]}
    return pd, cfg, pd.tasks(cfg, results_dir)


def _saved_numbers(pd, cfg, results_dir):
    out = {}
    for a, b in pd._points(cfg):
        point = pd._load_point(results_dir, pd._chain(cfg, a, b))
        out[(a, b)] = (point["loss"], point["controls"])
    return out


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("local")
    pd, cfg, tasks = _two_points(d)
    res = run_tasks(tasks, workers=2, progress=False)
    return d, pd, cfg, res


def test_local_pool_runs_each_task_once_and_resumes(local_run):
    d, pd, cfg, res = local_run
    assert sorted(res["run"]) == sorted(t.name for t in pd.tasks(cfg, d)) and len(res["run"]) == 2
    assert all(t.done for t in pd.tasks(cfg, d))  # the second run finds everything saved
    assert run_tasks(pd.tasks(cfg, d), workers=2, progress=False)["run"] == []


@pytest.mark.slow
def test_ray_gives_the_local_results(local_run, tmp_path):
    """The same tasks as Ray remote functions on a local Ray instance write the same results
    (same cache layout, same numbers) as the local worker processes."""
    if os.environ.get("CI") == "true":  # CI installs the ray extra: the test must run there
        import ray
    else:
        ray = pytest.importorskip("ray")
    d_local, pd, cfg, _ = local_run
    d_ray = tmp_path / "ray"
    _, _, tasks = _two_points(d_ray)
    assert not any(t.done for t in tasks)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        res = run_tasks(tasks, backend="ray", progress=False)
        assert len(res["run"]) == 2 and ray.is_initialized()  # ours: not shut down
        assert run_tasks(pd.tasks(cfg, d_ray), backend="ray", progress=False)["run"] == []
    finally:
        ray.shutdown()
    local, remote = _saved_numbers(pd, cfg, d_local), _saved_numbers(pd, cfg, d_ray)
    assert local.keys() == remote.keys()
    for k in local:
        np.testing.assert_allclose(remote[k][0], local[k][0], rtol=1e-12)
        for u, v in zip(remote[k][1], local[k][1], strict=True):
            np.testing.assert_allclose(u, v, rtol=1e-10)
    # Same files, named by the same configuration keys.
    names = sorted(p.relative_to(d_local).as_posix() for p in d_local.rglob("*.json"))
    assert names == sorted(p.relative_to(d_ray).as_posix() for p in d_ray.rglob("*.json"))
    point = next(d_ray.rglob("point.json"))
    assert "_rfmodel" in json.loads(point.read_text())  # written with its integrity record
    shutil.rmtree(d_ray)


def test_ray_backend_without_ray_is_a_clear_error(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray":
            raise ImportError("no ray")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    t = Task("phase_diagram", "config", {"quick": True}, name="x")
    with pytest.raises(ValueError, match=r"rfmodel\[ray\]"):
        run_tasks([t], backend="ray", progress=False)
