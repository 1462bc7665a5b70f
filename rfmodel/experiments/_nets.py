"""Small real networks for the practitioner's benchmark (:mod:`rfmodel.experiments.advice`):
data, models, SGD training.

Tasks on data that is always on disk or drawn from a seed (nothing is downloaded):

- ``digits``: an MLP (64 → width → width → 10, ReLU) on scikit-learn's bundled 8×8 digits
  (1797 images; the first 1500 train, pixels / 16). The logged loss is the cross-entropy on the
  whole training set: SGD samples minibatches from it with replacement, so this is the
  population loss of the distribution SGD sees.
- ``digits_noisy``: the same with fresh Gaussian input noise (std ``input_noise``) on every
  sampled image, and the loss on ``eval_copies`` fixed noisy copies of the training set: SGD on
  a population with irreducible loss, the setting of docs/theory.md §1 (fresh samples, noise).
- ``chars``: a character-level transformer (pre-LayerNorm, causal attention, learned positions)
  on the source of a fixed list of Python standard-library modules (``inspect.getsource``);
  characters outside printable ASCII map to one symbol. The logged loss is the cross-entropy
  per character on held-out text (the last 10%). The text differs between Python versions, so
  its SHA-256 is part of every cached result's key.

Added for the practitioner's benchmark (:mod:`rfmodel.experiments.advice`):

- ``teacher``: online teacher–student regression. Inputs x ∈ R^dim are Gaussian with covariance
  diag(k^−b), k = 1..dim; a fixed random teacher y = v·tanh(W x) (``teacher_width`` hidden
  units, drawn by NumPy from ``teacher_seed``, output scaled to unit variance) with label noise
  of std ``noise``; the student is a one-hidden-layer ReLU MLP (``width``) trained by SGD on
  fresh samples every step (``batch``) with the squared error. The logged loss is the
  population squared error E[(f(x) − y)²] = noise² + the mean of (f(x) − teacher(x))² over
  ``n_eval`` fixed inputs (a large fixed sample).
- ``digits_cnn``: a small CNN (3×3 conv → 3×3 stride-2 conv → linear, ReLU; ``channels``) on the
  8×8 digits with fresh Gaussian input noise (std ``input_noise``) on every sampled image, as
  ``digits_noisy``. The logged loss is the cross-entropy on fixed noisy copies of the
  ``n_train`` training images (``eval_copies`` copies, the first ``n_eval`` of them): the
  population loss SGD descends. (On the clean held-out images the loss rises again after a few
  epochs, so the final loss of a long run would measure overfitting, not the schedule.)
- ``linear``: the linear random-feature model where the theory is exact: the logged loss of a
  schedule is :func:`rfmodel.loss_curve` of ``Problem(a, b, sigma, n_modes, batch, ...)`` (the
  exact expected excess loss) at model rate ``lr_scale``·lr, the same for every seed (no
  Monte-Carlo noise: a seed-paired comparison on it has zero spread). Past stability the loss
  grows geometrically (inf once it overflows).

Training is plain SGD (``optax.sgd``, no momentum, the optimizer of docs/theory.md §2) with a
per-step rate array; runs with different schedules and seeds go through one ``vmap``.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

__all__ = ["load_task", "train", "text_source", "steps_per_second", "TASKS", "NETS_EXTRA"]

NETS_EXTRA = "pip install 'rfmodel[nets]'"

#: Task names :func:`load_task` knows.
TASKS = ("digits", "digits_noisy", "chars", "teacher", "digits_cnn", "linear")

#: Standard-library modules whose source is the character-level corpus (fixed order).
TEXT_MODULES = (
    "textwrap",
    "string",
    "heapq",
    "bisect",
    "colorsys",
    "fnmatch",
    "shlex",
    "glob",
    "queue",
    "sched",
    "calendar",
    "difflib",
    "fractions",
    "statistics",
    "argparse",
)


def _digits(n_train: int) -> dict[str, np.ndarray]:
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise ImportError(
            f"the digits task needs scikit-learn (its bundled digits data): {NETS_EXTRA}"
        ) from None
    d = load_digits()
    x = (d.data / 16.0).astype(np.float32)
    return {"x": x[:n_train], "y": d.target[:n_train].astype(np.int32)}


def text_source() -> str:
    """The corpus: the source of :data:`TEXT_MODULES`, concatenated."""
    import importlib
    import inspect

    return "\n".join(inspect.getsource(importlib.import_module(m)) for m in TEXT_MODULES)


def _chars() -> tuple[dict[str, np.ndarray], str]:
    text = text_source()
    codes = np.frombuffer(text.encode("ascii", "replace"), np.uint8).astype(np.int32)
    tok = np.where((codes >= 32) & (codes < 127), codes - 31, 0)  # 1..95 printable, 0 other
    tok = np.where(codes == 10, 96, tok)  # newline
    split = int(0.9 * tok.size)
    sha = hashlib.sha256(text.encode()).hexdigest()[:16]
    return {"train": tok[:split], "val": tok[split:]}, sha


# ----------------------------------------------------------------------------- models
class MLP(eqx.Module):
    """64 → width → width → 10 with ReLU; input (64,), output logits (10,)."""

    layers: list

    def __init__(self, width: int, key):
        k = jax.random.split(key, 3)
        dims = [64, width, width, 10]
        self.layers = [eqx.nn.Linear(dims[i], dims[i + 1], key=k[i]) for i in range(3)]

    def __call__(self, x):
        for lay in self.layers[:-1]:
            x = jax.nn.relu(lay(x))
        return self.layers[-1](x)


class Block(eqx.Module):
    """Pre-LayerNorm transformer block: causal self-attention and a 4× GELU MLP."""

    ln1: eqx.nn.LayerNorm
    attn: eqx.nn.MultiheadAttention
    ln2: eqx.nn.LayerNorm
    fc: eqx.nn.Linear
    proj: eqx.nn.Linear

    def __init__(self, d: int, heads: int, key):
        k = jax.random.split(key, 3)
        self.ln1, self.ln2 = eqx.nn.LayerNorm(d), eqx.nn.LayerNorm(d)
        self.attn = eqx.nn.MultiheadAttention(heads, d, key=k[0])
        self.fc = eqx.nn.Linear(d, 4 * d, key=k[1])
        self.proj = eqx.nn.Linear(4 * d, d, key=k[2])

    def __call__(self, x, mask):  # x (ctx, d)
        h = jax.vmap(self.ln1)(x)
        x = x + self.attn(h, h, h, mask=mask)
        h = jax.vmap(self.ln2)(x)
        return x + jax.vmap(lambda v: self.proj(jax.nn.gelu(self.fc(v))))(h)


class CharTransformer(eqx.Module):
    """Tokens (ctx,) → next-token logits (ctx, vocab)."""

    embed: eqx.nn.Embedding
    pos: jax.Array
    blocks: list
    ln: eqx.nn.LayerNorm
    head: eqx.nn.Linear

    def __init__(self, vocab: int, d: int, layers: int, heads: int, ctx: int, key):
        k = jax.random.split(key, layers + 3)
        self.embed = eqx.nn.Embedding(vocab, d, key=k[0])
        self.pos = 0.02 * jax.random.normal(k[1], (ctx, d))
        self.blocks = [Block(d, heads, k[2 + i]) for i in range(layers)]
        self.ln = eqx.nn.LayerNorm(d)
        self.head = eqx.nn.Linear(d, vocab, key=k[-1])

    def __call__(self, tokens):
        n = tokens.shape[0]
        x = jax.vmap(self.embed)(tokens) + self.pos[:n]
        mask = jnp.tril(jnp.ones((n, n), bool))
        for blk in self.blocks:
            x = blk(x, mask)
        return jax.vmap(lambda v: self.head(self.ln(v)))(x)


class StudentMLP(eqx.Module):
    """dim → width → 1 with ReLU (the teacher–student student); output a scalar."""

    hidden: eqx.nn.Linear
    out: eqx.nn.Linear

    def __init__(self, dim: int, width: int, key):
        k = jax.random.split(key)
        self.hidden = eqx.nn.Linear(dim, width, key=k[0])
        self.out = eqx.nn.Linear(width, "scalar", key=k[1])

    def __call__(self, x):
        return self.out(jax.nn.relu(self.hidden(x)))


class CNN(eqx.Module):
    """8×8 image (64,) → conv 3×3 (c1) → conv 3×3 stride 2 (c2, 4×4) → linear → logits (10,)."""

    conv1: eqx.nn.Conv2d
    conv2: eqx.nn.Conv2d
    head: eqx.nn.Linear

    def __init__(self, c1: int, c2: int, key):
        k = jax.random.split(key, 3)
        self.conv1 = eqx.nn.Conv2d(1, c1, 3, padding=1, key=k[0])
        self.conv2 = eqx.nn.Conv2d(c1, c2, 3, stride=2, padding=1, key=k[1])
        self.head = eqx.nn.Linear(c2 * 16, 10, key=k[2])

    def __call__(self, x):
        h = jax.nn.relu(self.conv1(x.reshape(1, 8, 8)))
        h = jax.nn.relu(self.conv2(h))
        return self.head(h.reshape(-1))


def _xent(logits, y):
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, y))


# ----------------------------------------------------------------------------- tasks
def _task(init, sample, evaluated: tuple[str, str], data, fingerprint: str) -> dict[str, Any]:
    """A task dict: mean cross-entropy of a minibatch (x, y) as the training loss, the same on
    ``data[evaluated[0]], data[evaluated[1]]`` as the logged loss."""

    def loss(model, xy):
        return _xent(jax.vmap(model)(xy[0]), xy[1])

    def evaluate(model, data):
        return loss(model, (data[evaluated[0]], data[evaluated[1]]))

    return {
        "init": init,
        "sample": sample,
        "loss": loss,
        "eval": evaluate,
        "data": data,
        "fingerprint": fingerprint,
    }


def load_task(cfg: dict[str, Any]) -> dict[str, Any]:
    """``{"init", "sample", "loss", "eval", "data", "fingerprint"}`` of a task config."""
    if cfg["task"] in ("digits", "digits_noisy"):
        data = _digits(int(cfg["n_train"]))
        width, batch = int(cfg["width"]), int(cfg["batch"])
        noise = float(cfg.get("input_noise", 0.0))
        if noise:  # fresh input noise every step; the loss on fixed noisy copies (population)
            rng = np.random.default_rng(12345)
            reps = int(cfg["eval_copies"])
            ex = np.tile(data["x"], (reps, 1))
            data["ex"] = (ex + noise * rng.standard_normal(ex.shape)).astype(np.float32)
            data["ey"] = np.tile(data["y"], reps)
        else:
            data["ex"], data["ey"] = data["x"], data["y"]

        def init(key):
            return MLP(width, key)

        def sample(data, key):
            ki, kn = jax.random.split(key)
            i = jax.random.randint(ki, (batch,), 0, data["x"].shape[0])
            x = data["x"][i] + noise * jax.random.normal(kn, (batch, data["x"].shape[1]))
            return x, data["y"][i]

        fp = hashlib.sha256(data["ex"].tobytes() + data["ey"].tobytes()).hexdigest()[:16]
        return _task(init, sample, ("ex", "ey"), data, fp)
    if cfg["task"] == "chars":
        data, sha = _chars()
        ctx, batch = int(cfg["ctx"]), int(cfg["batch"])
        n_val = int(cfg["val_seqs"])
        val = data["val"]
        starts = np.linspace(0, val.size - ctx - 2, n_val).astype(np.int64)
        data = {
            "train": data["train"],
            "vx": np.stack([val[s : s + ctx] for s in starts]),
            "vy": np.stack([val[s + 1 : s + ctx + 1] for s in starts]),
        }

        def init(key):
            return CharTransformer(97, cfg["d"], cfg["layers"], cfg["heads"], ctx, key)

        def sample(data, key):
            s = jax.random.randint(key, (batch,), 0, data["train"].shape[0] - ctx - 1)
            idx = s[:, None] + jnp.arange(ctx + 1)[None, :]
            seq = data["train"][idx]
            return seq[:, :-1], seq[:, 1:]

        return _task(init, sample, ("vx", "vy"), data, sha)
    if cfg["task"] == "teacher":
        return _teacher_task(cfg)
    if cfg["task"] == "digits_cnn":
        return _cnn_task(cfg)
    if cfg["task"] == "linear":
        return _linear_task(cfg)
    raise ValueError(f"task must be one of {', '.join(TASKS)}; got {cfg['task']!r}")


def _sha(*arrays: np.ndarray) -> str:
    """A data fingerprint that is the same on every machine: SHA-256 of the arrays' values,
    floats rounded to float32 (integers as they are). Computed float64 values differ between
    CPUs in their last bits (NumPy's vectorized ``power``, ``tanh``, ``exp`` and BLAS sums take
    other paths with other instruction sets), and hashing those bits made the committed results
    of ``teacher`` and ``linear`` unusable on another machine (``rfmodel figures`` retrained
    them: 8 tasks, 131 s); a value a few float64 ulps from a float32 rounding midpoint is about
    1 in 10⁸. Arrays computed in float32 (matrix products) are left out by the callers: their
    last bits move too."""

    def rounded(a: np.ndarray) -> np.ndarray:
        a = np.asarray(a)
        return a.astype(np.float32) if np.issubdtype(a.dtype, np.floating) else a

    return hashlib.sha256(
        b"".join(np.ascontiguousarray(rounded(a)).tobytes() for a in arrays)
    ).hexdigest()[:16]


def _teacher_task(cfg: dict[str, Any]) -> dict[str, Any]:
    """Online teacher–student regression (module docstring)."""
    dim, width, batch = int(cfg["dim"]), int(cfg["width"]), int(cfg["batch"])
    noise = float(cfg["noise"])
    rng = np.random.default_rng(int(cfg.get("teacher_seed", 0)))
    lam = np.arange(1, dim + 1, dtype=np.float64) ** -float(cfg["b"])
    h = int(cfg["teacher_width"])
    W = rng.standard_normal((h, dim)) / math.sqrt(lam.sum())  # pre-activations of unit variance
    v = rng.standard_normal(h) / math.sqrt(h)
    ex = rng.standard_normal((int(cfg["n_eval"]), dim)) * np.sqrt(lam)
    scale = 1.0 / np.std(np.tanh(ex @ W.T) @ v)  # teacher output of unit variance
    data = {
        "sqrt_lam": np.sqrt(lam).astype(np.float32),
        "W": W.astype(np.float32),
        "v": (scale * v).astype(np.float32),
        "ex": ex.astype(np.float32),
    }
    data["ey"] = (np.tanh(data["ex"] @ data["W"].T) @ data["v"]).astype(np.float32)

    def teacher(data, x):
        return jnp.tanh(x @ data["W"].T) @ data["v"]

    def init(key):
        return StudentMLP(dim, width, key)

    def sample(data, key):
        kx, kn = jax.random.split(key)
        x = jax.random.normal(kx, (batch, dim)) * data["sqrt_lam"]
        return x, teacher(data, x) + noise * jax.random.normal(kn, (batch,))

    def loss(model, xy):
        return jnp.mean((jax.vmap(model)(xy[0]) - xy[1]) ** 2)

    def evaluate(model, data):
        return noise**2 + jnp.mean((jax.vmap(model)(data["ex"]) - data["ey"]) ** 2)

    # ey is a float32 product of the others (its last bits follow the BLAS kernel): left out
    fp = _sha(*(data[k] for k in ("sqrt_lam", "W", "v", "ex")))
    return {
        "init": init,
        "sample": sample,
        "loss": loss,
        "eval": evaluate,
        "data": data,
        "fingerprint": fp,
    }


def _cnn_task(cfg: dict[str, Any]) -> dict[str, Any]:
    """A small CNN on the 8×8 digits with fresh input noise; population loss (module docstring)."""
    data = _digits(int(cfg["n_train"]))
    noise, batch = float(cfg["input_noise"]), int(cfg["batch"])
    rng = np.random.default_rng(12345)
    reps = int(cfg["eval_copies"])
    ex = np.tile(data["x"], (reps, 1))
    n_eval = int(cfg.get("n_eval", ex.shape[0]))  # the first n_eval noisy copies
    data["ex"] = (ex + noise * rng.standard_normal(ex.shape)).astype(np.float32)[:n_eval]
    data["ey"] = np.tile(data["y"], reps)[:n_eval]
    c1, c2 = int(cfg["channels"][0]), int(cfg["channels"][1])

    def init(key):
        return CNN(c1, c2, key)

    def sample(data, key):
        ki, kn = jax.random.split(key)
        i = jax.random.randint(ki, (batch,), 0, data["x"].shape[0])
        return data["x"][i] + noise * jax.random.normal(kn, (batch, data["x"].shape[1])), data["y"][
            i
        ]

    fp = "cnn-" + _sha(data["ex"], data["ey"])
    return _task(init, sample, ("ex", "ey"), data, fp)


def _linear_task(cfg: dict[str, Any]) -> dict[str, Any]:
    """The exact linear random-feature model (module docstring): ``train`` gives σ² + L(t)."""
    from ..dynamics import loss_curve
    from ..problem import Problem

    keys = ("a", "b", "sigma", "n_modes", "batch", "n_exact", "bins_per_decade")
    problem = Problem(**{k: cfg[k] for k in keys if k in cfg})
    c = float(cfg.get("lr_scale", 1.0))

    def exact(lr: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore", invalid="ignore"):
            out = np.asarray(loss_curve(problem, c * lr), np.float64)
        return np.where(np.isfinite(out), out, np.inf)

    fp = "linear-exact-" + _sha(problem.lam, problem.c0, problem.weight)
    return {"exact": exact, "fingerprint": fp, "data": {}}


def train(task: dict[str, Any], lrs: np.ndarray, seeds, every: int) -> np.ndarray:
    """Train one model per row of ``lrs`` (G, T) with ``optax.sgd``; seed ``seeds[g]`` draws its
    initialization and minibatches. Returns the evaluated loss after 0, every, 2·every, …, T
    updates, shape (G, T/every + 1), float64. (The ``linear`` task: the exact expected loss of
    each row, float64, whatever the seed.)"""
    if "exact" in task:
        lrs = np.asarray(lrs, np.float64)
        if lrs.shape[1] % every:
            raise ValueError(f"T={lrs.shape[1]} must be a multiple of every={every}")
        return np.stack([task["exact"](row)[::every] for row in lrs])
    lrs = np.asarray(lrs, np.float32)
    G, T = lrs.shape
    if T % every:
        raise ValueError(f"T={T} must be a multiple of every={every}")
    keys = jnp.stack([jax.random.key_data(jax.random.key(int(s))) for s in seeds])
    cache = task.setdefault("_compiled", {})
    if every not in cache:
        cache[every] = _train_jit(task["init"], task["sample"], task["loss"], task["eval"], every)
    return np.asarray(cache[every](task["data"], jnp.asarray(lrs), keys), np.float64)


def _train_jit(init, sample, loss, evaluate, every):
    @jax.jit
    def run(data, lrs, keys):
        def one(lr, kd):
            kinit, kdata = jax.random.split(jax.random.wrap_key_data(kd))
            params, static = eqx.partition(init(kinit), eqx.is_inexact_array)
            T = lr.shape[0]
            opt = optax.sgd(lambda c: lr[jnp.minimum(c, T - 1)])
            state = opt.init(params)

            def f(p, xy):
                return loss(eqx.combine(p, static), xy)

            def step(carry, k):
                p, s = carry
                g = jax.grad(f)(p, sample(data, k))
                u, s = opt.update(g, s, p)
                return (optax.apply_updates(p, u), s), None

            def block(carry, ks):
                carry, _ = jax.lax.scan(step, carry, ks)
                return carry, evaluate(eqx.combine(carry[0], static), data)

            ks = jax.random.split(kdata, T).reshape(T // every, every)
            l0 = evaluate(eqx.combine(params, static), data)
            _, ls = jax.lax.scan(block, (params, state), ks)
            return jnp.concatenate([l0[None], ls])

        return jax.vmap(one)(lrs, keys)

    return run


def steps_per_second(task: dict[str, Any], G: int, T: int = 40, every: int = 20) -> float:
    """Measured training steps per second of ``G`` runs in one batch (compile excluded)."""
    import time

    lrs = np.full((G, T), 0.05)
    train(task, lrs, range(G), every)
    t0 = time.perf_counter()
    train(task, lrs, range(G), every)
    return G * T / max(time.perf_counter() - t0, 1e-9)


def geometric(lo: float, hi: float, n: int) -> list[float]:
    """n rates from lo to hi, evenly spaced in log."""
    return [float(v) for v in np.exp(np.linspace(math.log(lo), math.log(hi), n))]
