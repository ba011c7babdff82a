"""JAX on CPU, GPU and TPU: the backend, its builder context, probe kernels and availability."""
