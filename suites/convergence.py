"""Time to accuracy: each case trains from a fixed seed until a target quality on held-out data.

Cases (mode ``train_to_target``; the harness runs them with
``xpubench.measure.convergence.measure_convergence``):

- ``mnist_cnn``: the primer's MNIST CNN (Conv 32 -> Conv 64 -> max-pool -> dropout
  0.25 -> dense 128 -> dropout 0.5 -> dense 10; Adadelta lr 1.0, rho 0.95; batch 128),
  to a held-out accuracy. smoke and default train on scikit-learn's bundled 8x8
  ``digits`` (offline; the dense layer takes the smaller pooled map); large on real
  MNIST (suites/datasets/mnist.py says where it is looked for).
- ``lstm_lm``: the training suite's byte-level LSTM language model (Adam) on the
  Python standard library's source (suites/datasets/text.py), to a validation loss
  in bits per byte. An "epoch" here is ``steps_per_epoch`` steps between
  evaluations, on windows drawn at random from the training text.

Same everywhere a backend differs: the data order (numpy, from the seed), the
initial weights (drawn in numpy with torch's default initialisers, then laid out
for each framework: conv kernels HWIO, dense kernels transposed, the flatten order
of the CNN's dense input permuted from C,H,W to H,W,C) and the held-out set. Dropout
masks come from each framework's own generator, seeded from the run's seed.

Early stopping (patience, minimum improvement, best weights restored) and the
budget of epochs and seconds are parameters of each size; ``measure_convergence``
may override the target and the budget. Precisions: fp32, tf32 (CUDA), bf16, fp16
with dynamic loss scaling (torch GradScaler; JAX the same rule), as in the training
suite; torch fp16 on a CPU that emulates it is skipped with the reason.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping

from xpubench.measure.convergence import TO_TARGET_MODE, Budget, EarlyStopping
from xpubench.seeding import seed_for
from xpubench.spec.registry import Work, workload
from xpubench.suites import flops as fl
from xpubench.suites.datasets import IMAGE_HW

if TYPE_CHECKING:  # numpy is imported where data is made: `xpubench list` stays light
    import numpy as np

MODES = (TO_TARGET_MODE,)
VOCAB = 256  # bytes
TEXT_TRAIN_BYTES = 2 << 20
TEXT_VAL_BYTES = 64 << 10
MAX_EVAL_WINDOWS = 256  # held-out windows of the LM (non-overlapping, from the start of the text)
MAX_EVAL_BATCH = 1000  # images per evaluation call
MIN_DELTA = {"accuracy": 0.001, "bits_per_byte": 0.01}
ADADELTA = dict(lr=1.0, rho=0.95, eps=1e-7)  # as the training suite (Keras 2 mnist_cnn)
LM_ADAM = dict(lr=3e-3, betas=(0.9, 0.999), eps=1e-8)  # a higher rate than the training suite's: fewer steps


def _cnn_work(p: Mapping[str, Any], mode: str) -> Work:
    return Work(p["batch"], fl.train_flops(fl.mnist_cnn_forward_flops(p["batch"], IMAGE_HW[p["data"]])))


def _lm_work(p: Mapping[str, Any], mode: str) -> Work:
    tokens = p["batch"] * p["seq"]
    return Work(tokens, fl.train_flops(fl.rnn_lm_forward_flops(tokens, "lstm", p["layers"], p["hidden"], VOCAB)))


mnist_cnn = workload(
    suite="convergence", name="mnist_cnn", modes=MODES, unit="samples",
    description="the primer's MNIST CNN with Adadelta, batch 128, dropout, early stopping, to a held-out "
                "accuracy (digits 8x8 offline; large: real MNIST to 99%)",
    sizes={"smoke": dict(data="digits", batch=128, target=0.9, max_epochs=40, max_seconds=60.0, patience=5),
           "default": dict(data="digits", batch=128, target=0.98, max_epochs=60, max_seconds=240.0, patience=10),
           "large": dict(data="mnist", batch=128, target=0.99, max_epochs=24, max_seconds=3600.0, patience=3)},
    work=_cnn_work,
    opt_in=True,
)
lstm_lm = workload(
    suite="convergence", name="lstm_lm", modes=MODES, unit="tokens",
    description="byte-level LSTM language model (Adam) on the Python standard library's source, "
                "to a validation loss in bits per byte",
    sizes={"smoke": dict(data="stdlib", batch=16, seq=32, hidden=64, layers=1, steps_per_epoch=25,
                         target=4.0, max_epochs=30, max_seconds=60.0, patience=3),
           "default": dict(data="stdlib", batch=32, seq=64, hidden=128, layers=1, steps_per_epoch=50,
                           target=3.0, max_epochs=40, max_seconds=300.0, patience=3),
           "large": dict(data="stdlib", batch=64, seq=128, hidden=512, layers=2, steps_per_epoch=200,
                         target=2.0, max_epochs=100, max_seconds=3600.0, patience=4)},
    work=_lm_work,
    opt_in=True,
)


# ------------------------------------------------------------------------ the task, framework-neutral
@dataclass
class Task:
    """What both frameworks train: the data, its order, the initial weights, the rule."""

    kind: str  # "classify" (train/val = (images NCHW, labels)) or "lm" (train/val = (bytes,))
    seed: int
    train: tuple[np.ndarray, ...]
    val: tuple[np.ndarray, ...]
    batch: int
    steps_per_epoch: int
    init: dict[str, np.ndarray]  # torch names and layouts
    metric: str
    higher_is_better: bool
    target: float
    budget: Budget
    early_stopping: EarlyStopping
    seq: int = 0
    notes: dict[str, Any] = field(default_factory=dict)

    def train_batches(self, epoch: int) -> np.ndarray:
        """(steps, batch) int64: sample indices (a fresh permutation, remainder dropped) or window starts."""
        import numpy as np

        rng = np.random.default_rng([seed_for("order", self.seed), epoch])
        if self.kind == "classify":
            n = len(self.train[1])
            return rng.permutation(n)[: self.steps_per_epoch * self.batch].reshape(self.steps_per_epoch, self.batch)
        return rng.integers(0, len(self.train[0]) - self.seq - 1, (self.steps_per_epoch, self.batch), dtype=np.int64)

    def eval_batches(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """(indices or window starts, mask) of equal length per call; padding is masked out."""
        import numpy as np

        if self.kind == "classify":
            starts, size = np.arange(len(self.val[1])), min(MAX_EVAL_BATCH, len(self.val[1]))
        else:
            starts = np.arange(0, len(self.val[0]) - self.seq - 1, self.seq)[:MAX_EVAL_WINDOWS]
            size = min(self.batch, len(starts))
        out = []
        for i in range(0, len(starts), size):
            chunk = starts[i:i + size]
            mask = np.zeros(size, np.float32)
            mask[: len(chunk)] = 1.0
            out.append((np.pad(chunk, (0, size - len(chunk))).astype(np.int64), mask))
        return out

    @functools.cached_property
    def eval_count(self) -> int:
        """Held-out images, or held-out tokens."""
        return int(sum(m.sum() for _, m in self.eval_batches())) * (self.seq if self.kind == "lm" else 1)

    def metric_from(self, total: float) -> float:
        """Held-out accuracy from the count correct; bits per byte from the summed loss in nats."""
        mean = total / self.eval_count
        return mean if self.kind == "classify" else mean / math.log(2)


def _uniform(rng: np.random.Generator, shape: tuple[int, ...], bound: float) -> np.ndarray:
    return rng.uniform(-bound, bound, shape).astype("float32")


def mnist_cnn_init(seed: int, hw: int, classes: int = 10) -> dict[str, np.ndarray]:
    """torch's defaults for Conv2d/Linear (weights and biases U(+-1/sqrt(fan_in))), in torch layout."""
    import numpy as np

    from xpubench.suites.models.cnn import mnist_flat_features

    rng = np.random.default_rng(seed_for("init", seed))
    out: dict[str, np.ndarray] = {}
    for name, shape in (("conv1", (32, 1, 3, 3)), ("conv2", (64, 32, 3, 3)),
                        ("fc1", (128, mnist_flat_features(hw))), ("fc2", (classes, 128))):
        bound = 1.0 / math.sqrt(math.prod(shape[1:]))
        out[f"{name}.weight"] = _uniform(rng, shape, bound)
        out[f"{name}.bias"] = _uniform(rng, shape[:1], bound)
    return out


def mnist_cnn_to_flax(w: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """torch layout -> the flax model's pure dict (HWIO kernels; dense input in H,W,C order)."""
    fc1 = w["fc1.weight"]
    side = int(math.isqrt(fc1.shape[1] // 64))
    return {
        "conv1": {"kernel": w["conv1.weight"].transpose(2, 3, 1, 0), "bias": w["conv1.bias"]},
        "conv2": {"kernel": w["conv2.weight"].transpose(2, 3, 1, 0), "bias": w["conv2.bias"]},
        "fc1": {"kernel": fc1.reshape(-1, 64, side, side).transpose(2, 3, 1, 0).reshape(-1, fc1.shape[0]),
                "bias": w["fc1.bias"]},
        "fc2": {"kernel": w["fc2.weight"].T, "bias": w["fc2.bias"]},
    }


def lstm_lm_init(seed: int, hidden: int, layers: int) -> dict[str, np.ndarray]:
    """torch's defaults: embedding N(0, 1), LSTM U(+-1/sqrt(H)), head U(+-1/sqrt(H))."""
    import numpy as np

    rng = np.random.default_rng(seed_for("init", seed))
    bound = 1.0 / math.sqrt(hidden)
    out = {"embed.weight": rng.standard_normal((VOCAB, hidden)).astype(np.float32)}
    for k in range(layers):
        out[f"rnn.weight_ih_l{k}"] = _uniform(rng, (4 * hidden, hidden), bound)
        out[f"rnn.weight_hh_l{k}"] = _uniform(rng, (4 * hidden, hidden), bound)
        out[f"rnn.bias_ih_l{k}"] = _uniform(rng, (4 * hidden,), bound)
        out[f"rnn.bias_hh_l{k}"] = _uniform(rng, (4 * hidden,), bound)
    out["head.weight"] = _uniform(rng, (VOCAB, hidden), bound)
    out["head.bias"] = _uniform(rng, (VOCAB,), bound)
    return out


def lstm_lm_to_flax(w: Mapping[str, np.ndarray]) -> dict[str, Any]:
    layers = sum(1 for k in w if k.startswith("rnn.weight_ih_l"))
    return {
        "embed": {"embedding": w["embed.weight"]},
        "layers": {k: {"w_ih": w[f"rnn.weight_ih_l{k}"].T, "w_hh": w[f"rnn.weight_hh_l{k}"].T,
                       "b_ih": w[f"rnn.bias_ih_l{k}"], "b_hh": w[f"rnn.bias_hh_l{k}"]} for k in range(layers)},
        "head": {"kernel": w["head.weight"].T, "bias": w["head.bias"]},
    }


def _rule(p: Mapping[str, Any], metric: str) -> dict[str, Any]:
    return dict(metric=metric, target=float(p["target"]),
                budget=Budget(int(p["max_epochs"]), float(p["max_seconds"])),
                early_stopping=EarlyStopping(int(p["patience"]), MIN_DELTA[metric]))


def mnist_task(p: Mapping[str, Any]) -> Task:
    from xpubench.suites.datasets import load_images

    data = _load(lambda: load_images(p["data"]))
    seed = int(p.get("seed", 0))
    return Task("classify", seed, (data.x_train, data.y_train), (data.x_val, data.y_val), p["batch"],
                len(data.y_train) // p["batch"], mnist_cnn_init(seed, data.hw, data.classes),
                higher_is_better=True, notes={**data.notes, "epoch": "one pass over the training set "
                                                                    "(the last partial batch dropped)"},
                **_rule(p, "accuracy"))


def lstm_task(p: Mapping[str, Any]) -> Task:
    from xpubench.suites.datasets.text import load_stdlib_text

    data = _load(lambda: load_stdlib_text(TEXT_TRAIN_BYTES, TEXT_VAL_BYTES))
    seed = int(p.get("seed", 0))
    return Task("lm", seed, (data.train,), (data.val,), p["batch"], p["steps_per_epoch"],
                lstm_lm_init(seed, p["hidden"], p["layers"]), higher_is_better=False, seq=p["seq"],
                notes={**data.notes, "epoch": f"{p['steps_per_epoch']} steps on random windows, then an evaluation"},
                **_rule(p, "bits_per_byte"))


def _load(load: Callable[[], Any]) -> Any:
    """A data set missing on this machine skips the case, with the message saying how to provide it."""
    from xpubench.errors import SkipCase
    from xpubench.suites.datasets import DataUnavailable

    try:
        return load()
    except DataUnavailable as e:
        raise SkipCase(str(e)) from None


# ------------------------------------------------------------------------ builders
def _build_torch(name: str):
    def build(ctx, p: Mapping[str, Any], mode: str):
        from xpubench.suites.convergence_train import torch_job
        from xpubench.suites.models import cnn, rnn

        if name == "mnist_cnn":
            task = mnist_task(p)
            return torch_job(ctx, task, lambda: cnn.torch_mnist_cnn(task.train[0].shape[-1]), "adadelta")
        task = lstm_task(p)
        return torch_job(ctx, task, lambda: rnn.torch_rnn_lm("lstm", VOCAB, p["hidden"], p["layers"]), "adam")
    return build


def _build_jax(name: str):
    def build(ctx, p: Mapping[str, Any], mode: str):
        from xpubench.suites.convergence_train import jax_job
        from xpubench.suites.models import cnn, rnn

        kw = dict(dtype=ctx.compute_dtype, param_dtype=ctx.param_dtype)
        if name == "mnist_cnn":
            task = mnist_task(p)
            return jax_job(ctx, task, lambda rngs: cnn.flax_mnist_cnn(**kw, rngs=rngs, hw=task.train[0].shape[-1]),
                           mnist_cnn_to_flax, "adadelta")
        task = lstm_task(p)
        return jax_job(ctx, task, lambda rngs: rnn.flax_rnn_lm("lstm", VOCAB, p["hidden"], p["layers"], **kw,
                                                               rngs=rngs),
                       lstm_lm_to_flax, "adam")
    return build


for _w in (mnist_cnn, lstm_lm):
    _w.builder("torch")(_build_torch(_w.name))
    _w.builder("jax")(_build_jax(_w.name))
