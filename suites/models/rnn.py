"""Recurrent language models (LSTM, GRU), torch and flax nnx side by side.

Token embedding (vocab x hidden) -> stacked LSTM or GRU (input = hidden) -> linear
head to the vocabulary; next-token cross-entropy over every position.

torch uses ``nn.LSTM`` / ``nn.GRU`` (the fused oneDNN / cuDNN kernels people
train with). The flax layers are written here to carry torch's exact
parameterisation, so parameter counts and the function match: per layer
``w_ih`` (G*H x I), ``w_hh`` (G*H x H) and two biases ``b_ih``, ``b_hh``, gates in
torch's order (LSTM i, f, g, o; GRU r, z, n with n = tanh(W_in x + b_in +
r * (W_hn h + b_hn))), initialised U(-1/sqrt(H), 1/sqrt(H)) as torch does.
(flax's own cells carry one bias per gate, so their counts differ from torch's.)
The input projection of all time steps is one matmul before ``lax.scan`` runs the
recurrence, as the fused kernels do.
"""

from __future__ import annotations

import functools
from types import SimpleNamespace

GATES = {"lstm": 4, "gru": 3}


# ------------------------------------------------------------------------------ torch
@functools.cache
def _torch() -> SimpleNamespace:
    import torch.nn as nn

    class RnnLM(nn.Module):
        def __init__(self, cell: str, vocab: int, hidden: int, layers: int):
            super().__init__()
            self.embed = nn.Embedding(vocab, hidden)
            rnn = {"lstm": nn.LSTM, "gru": nn.GRU}[cell]
            self.rnn = rnn(hidden, hidden, num_layers=layers, batch_first=True)
            self.head = nn.Linear(hidden, vocab)

        def forward(self, tokens):
            y, _ = self.rnn(self.embed(tokens))
            return self.head(y)

    return SimpleNamespace(RnnLM=RnnLM)


def torch_rnn_lm(cell: str, vocab: int, hidden: int, layers: int):
    return _torch().RnnLM(cell, vocab, hidden, layers)


# -------------------------------------------------------------------------------- jax
@functools.cache
def _flax() -> SimpleNamespace:
    import jax
    import jax.numpy as jnp
    from flax import nnx

    def uniform_param(rngs, shape, bound):
        return nnx.Param(jax.random.uniform(rngs.params(), shape, jnp.float32, -bound, bound))

    class RecurrentLayer(nnx.Module):
        """One LSTM or GRU layer over (batch, time, features), torch's parameters."""

        def __init__(self, cell: str, d_in: int, hidden: int, *, dtype, rngs: nnx.Rngs):
            g = GATES[cell]
            bound = 1.0 / hidden ** 0.5
            self.cell, self.hidden, self.dtype = cell, hidden, dtype
            # Stored (in, out) so x @ w needs no transpose.
            self.w_ih = uniform_param(rngs, (d_in, g * hidden), bound)
            self.w_hh = uniform_param(rngs, (hidden, g * hidden), bound)
            self.b_ih = uniform_param(rngs, (g * hidden,), bound)
            self.b_hh = uniform_param(rngs, (g * hidden,), bound)

        def __call__(self, x):
            dt, h_dim = self.dtype, self.hidden
            w_hh = self.w_hh[...].astype(dt)
            b_hh = self.b_hh[...].astype(dt)
            # All time steps' input projections in one matmul: (B, T, G*H) -> (T, B, G*H)
            xs = (x.astype(dt) @ self.w_ih[...].astype(dt) + self.b_ih[...].astype(dt)).swapaxes(0, 1)
            batch = x.shape[0]
            h0 = jnp.zeros((batch, h_dim), dt)

            if self.cell == "lstm":
                def step(carry, xt):
                    h, c = carry
                    i, f, g, o = jnp.split(xt + h @ w_hh + b_hh, 4, axis=-1)
                    c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
                    h = (jax.nn.sigmoid(o) * jnp.tanh(c)).astype(dt)
                    return (h, c), h

                # The cell state stays fp32 under a bf16/fp16 policy: it accumulates.
                _, ys = jax.lax.scan(step, (h0, jnp.zeros((batch, h_dim), jnp.float32)), xs)
            else:
                def step(h, xt):
                    xr, xz, xn = jnp.split(xt, 3, axis=-1)
                    hr, hz, hn = jnp.split(h @ w_hh + b_hh, 3, axis=-1)
                    r = jax.nn.sigmoid(xr + hr)
                    z = jax.nn.sigmoid(xz + hz)
                    n = jnp.tanh(xn + r * hn)
                    h = ((1 - z) * n + z * h).astype(dt)
                    return h, h

                _, ys = jax.lax.scan(step, h0, xs)
            return ys.swapaxes(0, 1)

    class RnnLM(nnx.Module):
        def __init__(self, cell: str, vocab: int, hidden: int, layers: int, *, dtype, param_dtype,
                     rngs: nnx.Rngs):
            self.embed = nnx.Embed(vocab, hidden, dtype=dtype, param_dtype=param_dtype,
                                   embedding_init=nnx.initializers.normal(1.0), rngs=rngs)
            self.layers = nnx.List([RecurrentLayer(cell, hidden, hidden, dtype=dtype, rngs=rngs)
                                    for _ in range(layers)])
            self.head = nnx.Linear(hidden, vocab, dtype=dtype, param_dtype=param_dtype, rngs=rngs)

        def __call__(self, tokens, key=None):  # no dropout: key accepted for a uniform API
            x = self.embed(tokens)
            for layer in self.layers:
                x = layer(x)
            return self.head(x)

    return SimpleNamespace(RnnLM=RnnLM)


def flax_rnn_lm(cell: str, vocab: int, hidden: int, layers: int, *, dtype, param_dtype, rngs):
    return _flax().RnnLM(cell, vocab, hidden, layers, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
