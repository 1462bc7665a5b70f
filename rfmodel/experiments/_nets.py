"""Small real networks for :mod:`rfmodel.experiments.networks`: data, models, SGD training.

Two tasks, both on data that is always on disk (nothing is downloaded):

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

__all__ = ["load_task", "train", "text_source", "NETS_EXTRA"]

NETS_EXTRA = "pip install 'rfmodel[nets]'"

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
    raise ValueError(f"task must be 'digits', 'digits_noisy' or 'chars'; got {cfg['task']!r}")


def train(task: dict[str, Any], lrs: np.ndarray, seeds, every: int) -> np.ndarray:
    """Train one model per row of ``lrs`` (G, T) with ``optax.sgd``; seed ``seeds[g]`` draws its
    initialization and minibatches. Returns the evaluated loss after 0, every, 2·every, …, T
    updates, shape (G, T/every + 1), float64."""
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
