"""A decoder-only GPT (GPT-2 layout), torch and flax nnx side by side.

Token + learned position embeddings, dropout, L pre-LayerNorm blocks (causal
multi-head self-attention with a fused qkv projection; GELU (tanh) MLP of width
4d; dropout on each residual branch), final LayerNorm, LM head tied to the token
embedding. GPT-2 initialisation: normal(0, 0.02), residual output projections
scaled by 1/sqrt(2L), zero biases. At 12 layers, d 768, 12 heads, vocab 50257,
context 1024 this is GPT-2 small: 124,439,808 parameters.

Attention runs through each framework's fused entry point (torch
``scaled_dot_product_attention``, ``jax.nn.dot_product_attention``) with
``is_causal``; neither applies dropout to the attention probabilities (JAX's has
no dropout), so that dropout is left out in both. ``fused_attention=False`` (flax)
writes the same attention as two einsums: XLA:CPU rejects the fp16 x fp16 -> fp32
dot that ``jax.nn.dot_product_attention`` asks for.
"""

from __future__ import annotations

import functools
from types import SimpleNamespace

from xpubench.suites.models import jax_dropout, split_key

LN_EPS = 1e-5
INIT_STD = 0.02


# ------------------------------------------------------------------------------ torch
@functools.cache
def _torch() -> SimpleNamespace:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    class CausalSelfAttention(nn.Module):
        def __init__(self, d: int, heads: int):
            super().__init__()
            self.heads = heads
            self.qkv = nn.Linear(d, 3 * d)
            self.proj = nn.Linear(d, d)

        def forward(self, x):
            b, t, d = x.shape
            q, k, v = (z.view(b, t, self.heads, d // self.heads).transpose(1, 2)
                       for z in self.qkv(x).split(d, dim=2))
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            return self.proj(y.transpose(1, 2).reshape(b, t, d))

    class Block(nn.Module):
        def __init__(self, d: int, heads: int, dropout: float):
            super().__init__()
            self.ln1 = nn.LayerNorm(d, eps=LN_EPS)
            self.attn = CausalSelfAttention(d, heads)
            self.ln2 = nn.LayerNorm(d, eps=LN_EPS)
            self.fc = nn.Linear(d, 4 * d)
            self.proj = nn.Linear(4 * d, d)
            self.drop = nn.Dropout(dropout)

        def forward(self, x):
            x = x + self.drop(self.attn(self.ln1(x)))
            return x + self.drop(self.proj(F.gelu(self.fc(self.ln2(x)), approximate="tanh")))

    class GPT(nn.Module):
        def __init__(self, vocab: int, seq: int, layers: int, d: int, heads: int, dropout: float):
            super().__init__()
            self.wte = nn.Embedding(vocab, d)
            self.wpe = nn.Embedding(seq, d)
            self.drop = nn.Dropout(dropout)
            self.blocks = nn.ModuleList(Block(d, heads, dropout) for _ in range(layers))
            self.ln_f = nn.LayerNorm(d, eps=LN_EPS)
            self._init(layers)

        @torch.no_grad()
        def _init(self, layers: int):
            for name, p in self.named_parameters():
                if name.endswith("bias"):
                    p.zero_()
                elif "ln" in name:
                    p.fill_(1.0)
                else:
                    scaled = name.endswith("proj.weight")  # residual output projections
                    p.normal_(0.0, INIT_STD / (2 * layers) ** 0.5 if scaled else INIT_STD)

        def forward(self, tokens):
            t = tokens.shape[1]
            pos = torch.arange(t, device=tokens.device)
            x = self.drop(self.wte(tokens) + self.wpe(pos))
            for block in self.blocks:
                x = block(x)
            return F.linear(self.ln_f(x), self.wte.weight)  # tied head

    return SimpleNamespace(GPT=GPT)


def torch_gpt(vocab: int, seq: int, layers: int, d_model: int, heads: int, dropout: float):
    return _torch().GPT(vocab, seq, layers, d_model, heads, dropout)


# -------------------------------------------------------------------------------- jax
@functools.cache
def _flax() -> SimpleNamespace:
    import jax
    import jax.numpy as jnp
    from flax import nnx

    normal = nnx.initializers.normal

    def causal_attention(q, k, v):
        """Plain causal attention, (batch, time, heads, head_dim); softmax in fp32."""
        scores = jnp.einsum("bthd,bshd->bhts", q, k) / jnp.sqrt(jnp.float32(q.shape[-1])).astype(q.dtype)
        t = q.shape[1]
        scores = jnp.where(jnp.tril(jnp.ones((t, t), bool)), scores.astype(jnp.float32), -jnp.inf)
        return jnp.einsum("bhts,bshd->bthd", jax.nn.softmax(scores, axis=-1).astype(v.dtype), v)

    class CausalSelfAttention(nnx.Module):
        def __init__(self, d: int, heads: int, layers: int, kw, fused: bool = True):
            self.heads, self.fused = heads, fused
            self.qkv = nnx.Linear(d, 3 * d, kernel_init=normal(INIT_STD), **kw)
            self.proj = nnx.Linear(d, d, kernel_init=normal(INIT_STD / (2 * layers) ** 0.5), **kw)

        def __call__(self, x):
            b, t, d = x.shape
            q, k, v = (z.reshape(b, t, self.heads, d // self.heads) for z in jnp.split(self.qkv(x), 3, axis=-1))
            attend = (lambda q, k, v: jax.nn.dot_product_attention(q, k, v, is_causal=True)) if self.fused \
                else causal_attention
            y = attend(q, k, v)
            return self.proj(y.reshape(b, t, d))

    class Block(nnx.Module):
        def __init__(self, d: int, heads: int, layers: int, dropout: float, kw, fused: bool):
            self.dropout = dropout
            self.ln1 = nnx.LayerNorm(d, epsilon=LN_EPS, **kw)
            self.attn = CausalSelfAttention(d, heads, layers, kw, fused)
            self.ln2 = nnx.LayerNorm(d, epsilon=LN_EPS, **kw)
            self.fc = nnx.Linear(d, 4 * d, kernel_init=normal(INIT_STD), **kw)
            self.proj = nnx.Linear(4 * d, d, kernel_init=normal(INIT_STD / (2 * layers) ** 0.5), **kw)

        def __call__(self, x, key=None):
            k1, k2 = split_key(key, 2)
            x = x + jax_dropout(self.attn(self.ln1(x)), self.dropout, k1)
            h = self.proj(jax.nn.gelu(self.fc(self.ln2(x)), approximate=True))
            return x + jax_dropout(h, self.dropout, k2)

    class GPT(nnx.Module):
        def __init__(self, vocab: int, seq: int, layers: int, d: int, heads: int, dropout: float, *,
                     dtype, param_dtype, rngs: nnx.Rngs, fused_attention: bool = True):
            kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
            self.dropout = dropout
            self.wte = nnx.Embed(vocab, d, embedding_init=normal(INIT_STD), **kw)
            self.wpe = nnx.Embed(seq, d, embedding_init=normal(INIT_STD), **kw)
            self.blocks = nnx.List([Block(d, heads, layers, dropout, kw, fused_attention) for _ in range(layers)])
            self.ln_f = nnx.LayerNorm(d, epsilon=LN_EPS, **kw)

        def __call__(self, tokens, key=None):
            keys = split_key(key, len(self.blocks) + 1)
            t = tokens.shape[1]
            x = jax_dropout(self.wte(tokens) + self.wpe(jnp.arange(t)), self.dropout, keys[0])
            for block, k in zip(self.blocks, keys[1:]):
                x = block(x, k)
            return self.wte.attend(self.ln_f(x))  # tied head

    return SimpleNamespace(GPT=GPT)


def flax_gpt(vocab: int, seq: int, layers: int, d_model: int, heads: int, dropout: float, *,
             dtype, param_dtype, rngs, fused_attention: bool = True):
    """``fused_attention=False``: plain einsum attention (for XLA:CPU at fp16)."""
    return _flax().GPT(vocab, seq, layers, d_model, heads, dropout, dtype=dtype, param_dtype=param_dtype,
                       rngs=rngs, fused_attention=fused_attention)
