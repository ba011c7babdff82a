"""PyTorch on CPU and CUDA: the backend, its builder context, probe kernels and availability."""
