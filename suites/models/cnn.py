"""CNNs: the classic MNIST CNN and a ResNet-18 layout, torch and flax nnx side by side.

MNIST CNN (Keras ``examples/mnist_cnn.py``): Conv 32 3x3 ReLU, Conv 64 3x3 ReLU,
MaxPool 2x2, Dropout 0.25, Flatten, Dense 128 ReLU, Dropout 0.5, Dense 10 on
28x28x1 images: 1,199,882 parameters (other square sizes: the dense layer takes the
pooled features, ``mnist_flat_features(hw)``). The flatten order differs (torch flattens
C,H,W; flax H,W,C); the function and parameter count do not.

ResNet-18: basic blocks (3x3 conv, BN, ReLU, 3x3 conv, BN, + shortcut, ReLU),
stages of 2 blocks at widths w, 2w, 4w, 8w (w = 64 for the real ResNet-18),
convolutions without bias, global average pool, linear classifier. The stem
follows the input size: CIFAR-style 3x3/1 conv below 64 px (the usual 32x32
ResNet-18), ImageNet-style 7x7/2 conv + 3x3/2 max-pool from 64 px up.
Padding is explicit and symmetric in both frameworks, so shapes match exactly.
"""

from __future__ import annotations

import functools
from types import SimpleNamespace

from xpubench.suites.models import jax_dropout, split_key

MNIST_PARAMS = 1_199_882
MNIST_CLASSES = 10
BN_EPS = 1e-5
RESNET18_BLOCKS = (2, 2, 2, 2)


def mnist_flat_features(hw: int) -> int:
    """Inputs to the MNIST CNN's first dense layer: 64 maps of two valid 3x3 convs, pooled 2x2."""
    return ((hw - 4) // 2) ** 2 * 64


def imagenet_stem(hw: int) -> bool:
    return hw >= 64


# ------------------------------------------------------------------------------ torch
@functools.cache
def _torch() -> SimpleNamespace:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    class MnistCNN(nn.Module):
        def __init__(self, hw: int = 28):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 32, 3)
            self.conv2 = nn.Conv2d(32, 64, 3)
            self.drop1 = nn.Dropout(0.25)
            self.fc1 = nn.Linear(mnist_flat_features(hw), 128)
            self.drop2 = nn.Dropout(0.5)
            self.fc2 = nn.Linear(128, MNIST_CLASSES)

        def forward(self, x):
            x = F.relu(self.conv1(x))
            x = F.relu(self.conv2(x))
            x = self.drop1(F.max_pool2d(x, 2))
            x = F.relu(self.fc1(torch.flatten(x, 1)))
            return self.fc2(self.drop2(x))

    class BasicBlock(nn.Module):
        def __init__(self, c_in: int, c: int, stride: int):
            super().__init__()
            self.conv1 = nn.Conv2d(c_in, c, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(c, eps=BN_EPS)
            self.conv2 = nn.Conv2d(c, c, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(c, eps=BN_EPS)
            self.down = None
            if stride != 1 or c_in != c:
                self.down = nn.Sequential(nn.Conv2d(c_in, c, 1, stride, bias=False), nn.BatchNorm2d(c, eps=BN_EPS))

        def forward(self, x):
            y = F.relu(self.bn1(self.conv1(x)))
            y = self.bn2(self.conv2(y))
            return F.relu(y + (x if self.down is None else self.down(x)))

    class ResNet(nn.Module):
        def __init__(self, hw: int, width: int, classes: int, blocks=RESNET18_BLOCKS):
            super().__init__()
            self.imagenet = imagenet_stem(hw)
            if self.imagenet:
                self.stem = nn.Conv2d(3, width, 7, 2, 3, bias=False)
            else:
                self.stem = nn.Conv2d(3, width, 3, 1, 1, bias=False)
            self.bn = nn.BatchNorm2d(width, eps=BN_EPS)
            layers, c_in = [], width
            for stage, n in enumerate(blocks):
                c = width * 2 ** stage
                for b in range(n):
                    layers.append(BasicBlock(c_in, c, 2 if (stage > 0 and b == 0) else 1))
                    c_in = c
            self.blocks = nn.Sequential(*layers)
            self.fc = nn.Linear(c_in, classes)

        def forward(self, x):
            x = F.relu(self.bn(self.stem(x)))
            if self.imagenet:
                x = F.max_pool2d(x, 3, 2, 1)
            x = self.blocks(x)
            return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))

    return SimpleNamespace(MnistCNN=MnistCNN, ResNet=ResNet)


def torch_mnist_cnn(hw: int = 28):
    return _torch().MnistCNN(hw)


def torch_resnet(hw: int, width: int, classes: int):
    return _torch().ResNet(hw, width, classes)


# -------------------------------------------------------------------------------- jax
@functools.cache
def _flax() -> SimpleNamespace:
    import jax.numpy as jnp
    from flax import nnx

    def pool(x, k: int, s: int, pad: int = 0):
        return nnx.max_pool(x, (k, k), strides=(s, s), padding=((pad, pad), (pad, pad)))

    class MnistCNN(nnx.Module):
        def __init__(self, *, dtype, param_dtype, rngs: nnx.Rngs, hw: int = 28):
            kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
            self.conv1 = nnx.Conv(1, 32, (3, 3), padding="VALID", **kw)
            self.conv2 = nnx.Conv(32, 64, (3, 3), padding="VALID", **kw)
            self.fc1 = nnx.Linear(mnist_flat_features(hw), 128, **kw)
            self.fc2 = nnx.Linear(128, MNIST_CLASSES, **kw)

        def features(self, x, key=None):
            """Everything up to the flattened, dropped-out conv features."""
            k1, _ = split_key(key, 2)
            x = nnx.relu(self.conv1(x))
            x = nnx.relu(self.conv2(x))
            x = jax_dropout(pool(x, 2, 2), 0.25, k1)
            return x.reshape(x.shape[0], -1)

        def __call__(self, x, key=None):
            """x: (N, hw, hw, 1) in [0, 1]; key=None is eval mode."""
            _, k2 = split_key(key, 2)
            x = nnx.relu(self.fc1(self.features(x, key)))
            return self.fc2(jax_dropout(x, 0.5, k2))

    def conv(c_in, c, k, s, pad, kw):
        return nnx.Conv(c_in, c, (k, k), strides=(s, s), padding=((pad, pad), (pad, pad)), use_bias=False, **kw)

    def bn(c, kw):
        # flax momentum is the weight of the old running value: torch's 0.1 == flax's 0.9
        return nnx.BatchNorm(c, momentum=0.9, epsilon=BN_EPS, **kw)

    class BasicBlock(nnx.Module):
        def __init__(self, c_in: int, c: int, stride: int, kw):
            self.conv1, self.bn1 = conv(c_in, c, 3, stride, 1, kw), bn(c, kw)
            self.conv2, self.bn2 = conv(c, c, 3, 1, 1, kw), bn(c, kw)
            self.has_down = stride != 1 or c_in != c
            if self.has_down:  # projection shortcut where the shape changes
                self.down_conv, self.down_bn = conv(c_in, c, 1, stride, 0, kw), bn(c, kw)

        def __call__(self, x, train: bool):
            ura = not train
            y = nnx.relu(self.bn1(self.conv1(x), use_running_average=ura))
            y = self.bn2(self.conv2(y), use_running_average=ura)
            sc = self.down_bn(self.down_conv(x), use_running_average=ura) if self.has_down else x
            return nnx.relu(y + sc)

    class ResNet(nnx.Module):
        def __init__(self, hw: int, width: int, classes: int, *, dtype, param_dtype, rngs: nnx.Rngs,
                     blocks=RESNET18_BLOCKS):
            kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
            self.imagenet = imagenet_stem(hw)
            self.stem = conv(3, width, 7, 2, 3, kw) if self.imagenet else conv(3, width, 3, 1, 1, kw)
            self.bn = bn(width, kw)
            layers, c_in = [], width
            for stage, n in enumerate(blocks):
                c = width * 2 ** stage
                for b in range(n):
                    layers.append(BasicBlock(c_in, c, 2 if (stage > 0 and b == 0) else 1, kw))
                    c_in = c
            self.blocks = nnx.List(layers)
            self.fc = nnx.Linear(c_in, classes, **kw)

        def __call__(self, x, train: bool = False):
            x = nnx.relu(self.bn(self.stem(x), use_running_average=not train))
            if self.imagenet:
                x = pool(x, 3, 2, 1)
            for block in self.blocks:
                x = block(x, train)
            return self.fc(jnp.mean(x, axis=(1, 2)))

    return SimpleNamespace(MnistCNN=MnistCNN, ResNet=ResNet, pool=pool)


def flax_mnist_cnn(*, dtype, param_dtype, rngs, hw: int = 28):
    return _flax().MnistCNN(dtype=dtype, param_dtype=param_dtype, rngs=rngs, hw=hw)


def flax_resnet(hw: int, width: int, classes: int, *, dtype, param_dtype, rngs):
    return _flax().ResNet(hw, width, classes, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
