"""Benchmark your own layer on every backend, device-correct:

    pytest examples/test_my_layer.py                                   # every backend available here
    pytest examples/test_my_layer.py --xpu-backend torch:cuda:bf16 --benchmark-json out.json
    xpubench report out.json                                           # shown like xpubench's own runs

The ``xpu_backend`` fixture (from the xpubench pytest plugin) runs the test once per
backend; ``bench`` times it with pytest-benchmark, waiting for the device inside
the timed call, under the backend's precision (autocast / compute dtype).
"""

BATCH, WIDTH = 64, 256


def mlp(xpu, x):
    """The layer under test: Linear -> GELU -> Linear, in whichever framework the backend runs."""
    if xpu.framework == "torch":
        import torch.nn as nn

        layer = nn.Sequential(nn.Linear(WIDTH, 4 * WIDTH), nn.GELU(), nn.Linear(4 * WIDTH, WIDTH))
        return xpu.put(layer.eval().requires_grad_(False))  # inference: no autograd graph
    import jax

    w1 = xpu.randn("w1", (WIDTH, 4 * WIDTH), scale=WIDTH**-0.5)
    w2 = xpu.randn("w2", (4 * WIDTH, WIDTH), scale=(4 * WIDTH) ** -0.5)

    def layer(x):  # fp32 parameters, compute in the input's dtype (bf16 under jax:*:bf16)
        return jax.nn.gelu(x @ w1.astype(x.dtype), approximate=False) @ w2.astype(x.dtype)

    return xpu.compile(layer, x)  # jit for x's shape and dtype; compile time is kept apart


def test_my_mlp(xpu_backend, benchmark):
    x = xpu_backend.tensor("x", (BATCH, WIDTH))  # seeded, on the device, in the compute dtype
    y = xpu_backend.bench(benchmark, mlp(xpu_backend, x), x, units=BATCH, unit="samples",
                          flops=2 * 2 * BATCH * WIDTH * 4 * WIDTH)
    assert tuple(y.shape) == (BATCH, WIDTH)
