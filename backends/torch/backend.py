"""PyTorch on CPU and CUDA.

Precision modes: ``fp32`` (TF32 and reduced-precision reductions off), ``tf32``
(CUDA: TF32 matmul/cuDNN on), ``bf16``/``fp16`` (autocast: modules keep fp32
parameters, activations arrive in the compute dtype as they do inside a
mixed-precision network), ``int8`` (quantized inference cases) and ``fp8``
(Hopper-class GPUs, matmul-heavy cases). Timing: CPU ops are synchronous, so a host
clock around the block is exact; CUDA uses events around the block and waits on the
end event before reading them.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from xpubench.backends import availability as av
from xpubench.backends.base import Availability, Backend, BackendSpec, Step
from xpubench.backends.torch import availability as tav
from xpubench.backends.torch.context import TorchContext

if TYPE_CHECKING:
    from xpubench.options import RunOptions

# What a plain `xpubench run` compares on this machine, whatever the CPU's flags: CPU fp16
# (emulated on most CPUs, and rejected by some oneDNN primitives) and int8, and fp8 on
# GPUs, run only when asked for with -b.
DEFAULT_PRECISIONS = {"cpu": ("fp32", "bf16"), "cuda": ("fp32", "tf32", "bf16", "fp16")}


class TorchBackend(Backend):
    framework = "torch"
    devices = ("cpu", "cuda")
    software = ("torch",)
    software_optional = ("triton", "pytorch-triton", "torch-xla")
    probe_kernels = "xpubench.backends.torch.probe"

    def __init__(self, spec: BackendSpec):
        super().__init__(spec)
        self.device = None
        self.cold_cache = False  # CUDA only: flush L2 before each timed call
        self._flush_buf = None
        self.timing_method = "cuda-events" if spec.device == "cuda" else "perf_counter"

    # --- parent side ---------------------------------------------------------------
    @classmethod
    def default_specs(cls) -> list[BackendSpec]:
        if not av.module_present("torch"):
            return []
        specs = [BackendSpec("torch", "cpu", p) for p in DEFAULT_PRECISIONS["cpu"]]
        if tav.cuda_usable():
            specs += [BackendSpec("torch", "cuda", p) for p in DEFAULT_PRECISIONS["cuda"]]
        return specs

    def availability(self) -> Availability:
        if not av.module_present("torch"):
            return Availability(False, "torch is not installed")
        p, dev = self.spec.precision, self.spec.device
        if dev == "cpu":
            if p in ("tf32", "fp8"):
                return Availability(False, f"{p} is a CUDA precision mode")
            return Availability(True)
        if not tav.torch_cuda_build():
            return Availability(False, "no CUDA device: this torch is a CPU-only build")
        missing = av.cuda_device_missing(self.spec.device_index)
        return Availability(missing is None, missing or "")

    def skip_reason(self, case) -> str | None:
        reason = super().skip_reason(case)
        if reason:
            return reason
        if self.spec.precision == "fp8" and self.device is not None:
            cap = self._torch.cuda.get_device_capability(self.device)
            if cap < (8, 9):
                return f"fp8 needs compute capability 8.9+ (this GPU is {cap[0]}.{cap[1]})"
        return None

    # --- worker side ---------------------------------------------------------------
    def setup(self, threads: int | None = None) -> dict[str, Any]:
        import torch

        self._torch = torch
        if threads:
            torch.set_num_threads(threads)
        info: dict[str, Any] = {"torch": torch.__version__, "threads": torch.get_num_threads(),
                                "interop_threads": torch.get_num_interop_threads()}
        if self.spec.device == "cuda":
            if not torch.cuda.is_available():
                raise RuntimeError("no CUDA device visible to torch")
            self.device = torch.device("cuda", self.spec.device_index)
            torch.cuda.set_device(self.device)
            props = torch.cuda.get_device_properties(self.device)
            info.update(device_name=props.name, capability=f"{props.major}.{props.minor}",
                        device_memory_bytes=props.total_memory, cuda=torch.version.cuda,
                        cudnn=torch.backends.cudnn.version())
        else:
            self.device = torch.device("cpu")
            info.update(cpu_capability=torch.backends.cpu.get_cpu_capability())
        info["device_key"] = self.device_key
        return info

    def activate(self) -> None:
        torch = self._torch
        tf32 = self.spec.precision == "tf32"
        # fp32 means true fp32: no TF32 and no reduced-precision reductions.
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
        torch.set_float32_matmul_precision("high" if tf32 else "highest")
        torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction = self.spec.precision == "bf16"
        torch.backends.cuda.matmul.allow_fp16_reduced_precision_reduction = self.spec.precision == "fp16"

    def context(self, overrides: dict[str, Any] | None = None, options: "RunOptions | None" = None) -> TorchContext:
        return TorchContext(self, overrides, options=options)

    def synchronize(self) -> None:
        if self.device is not None and self.device.type == "cuda":
            self._torch.cuda.synchronize(self.device)

    @property
    def waits(self) -> bool:
        return self.spec.device == "cuda"  # CPU ops are synchronous

    def time_block(self, step: Step, n: int) -> float:
        run = step.run
        if self.device is not None and self.device.type == "cuda":
            return self._time_cuda(run, n)
        t0 = time.perf_counter()
        for _ in range(n):
            run()
        return time.perf_counter() - t0

    def _time_cuda(self, run, n: int) -> float:
        torch = self._torch
        if self.cold_cache and n > 0:
            return self._time_cuda_cold(run, n)
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        self.synchronize()  # earlier work must not leak into this block
        start.record()
        for _ in range(n):
            run()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3

    def _l2_flush_buffer(self):
        if self._flush_buf is None:
            torch = self._torch
            l2 = getattr(torch.cuda.get_device_properties(self.device), "L2_cache_size", 0) or 0
            # Twice the L2 size (256 MiB when unknown) evicts whatever the step left.
            nbytes = max(2 * l2, 256 << 20) if l2 else 256 << 20
            self._flush_buf = torch.empty(nbytes // 4, dtype=torch.int32, device=self.device)
        return self._flush_buf

    def _time_cuda_cold(self, run, n: int) -> float:
        """Each call timed on its own between events, with L2 flushed outside the window."""
        torch = self._torch
        buf = self._l2_flush_buffer()
        starts = [torch.cuda.Event(enable_timing=True) for _ in range(n)]
        ends = [torch.cuda.Event(enable_timing=True) for _ in range(n)]
        self.synchronize()
        for i in range(n):
            buf.zero_()
            starts[i].record()
            run()
            ends[i].record()
        ends[-1].synchronize()
        return sum(s.elapsed_time(e) for s, e in zip(starts, ends)) / 1e3

    def device_uuid(self) -> str | None:
        if self.device is None or self.device.type != "cuda":
            return None
        uuid = str(getattr(self._torch.cuda.get_device_properties(self.device), "uuid", "") or "")
        if not uuid:
            return None
        # torch prints the 16 bytes as 8-4-4-4-12 hex; NVML prefixes them (a MIG slice's
        # bytes are its MIG-... UUID: telemetry tries both spellings)
        return uuid if uuid[:4] in ("GPU-", "MIG-") else f"GPU-{uuid}"

    def reset_peak_memory(self) -> None:
        if self.device is not None and self.device.type == "cuda":
            self.synchronize()
            self._torch.cuda.reset_peak_memory_stats(self.device)

    def peak_memory(self) -> dict[str, Any]:
        if self.device is not None and self.device.type == "cuda":
            torch = self._torch
            self.synchronize()
            return {"device_peak_bytes": int(torch.cuda.max_memory_allocated(self.device)),
                    "device_reserved_peak_bytes": int(torch.cuda.max_memory_reserved(self.device)),
                    "device_method": "torch.cuda.max_memory_allocated"}
        return {"device_peak_bytes": None, "device_method": "unavailable",
                "device_reason": "torch has no CPU allocator peak; see host_peak_bytes"}

    def device_memory_bytes(self) -> int | None:
        if self.device is not None and self.device.type == "cuda":
            return int(self._torch.cuda.get_device_properties(self.device).total_memory)
        return None

    def release(self) -> None:
        import gc

        gc.collect()
        if self.device is not None and self.device.type == "cuda":
            self._torch.cuda.empty_cache()
