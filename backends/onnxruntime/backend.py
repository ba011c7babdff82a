"""ONNX Runtime on the CPU and CUDA execution providers.

Specs: ``onnxruntime:cpu:{fp32,int8}`` and ``onnxruntime:cuda:{fp32,fp16}`` (the
CUDA provider comes with the ``onnxruntime-gpu`` distribution; without it the spec
is unavailable, with the reason). A builder exports the suite's torch model, with
the same weights, to ONNX (``export.py``), reduces its precision with ORT's own
tools (``quantize.py``) and runs it in an ``InferenceSession`` whose options are
recorded: threads, graph optimisation level, execution mode and the providers the
session actually uses.

Timing: on the CPU ``run`` returns when the outputs exist, so a host clock around
the block is exact. On CUDA the inputs and outputs are bound to the device once
(I/O binding; outputs preallocated by a first run), so a timed call is device work
and no host copy; the block ends by waiting on the bound outputs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Hashable, Mapping

from xpubench.backends import availability as av
from xpubench.backends.base import Availability, Backend, BackendSpec, Step
from xpubench.errors import SkipCase

PRECISIONS = {"cpu": ("fp32", "int8"), "cuda": ("fp32", "fp16")}
PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}
EXTRA_HINT = "pip install 'xpubench[onnx]'"
GPU_DIST = "onnxruntime-gpu"


def physical_cores() -> int:
    import os

    import psutil

    return psutil.cpu_count(logical=False) or os.cpu_count() or 1


@dataclass
class OrtRunner:
    """A session ready to call: ``run`` is the timed call, ``outputs`` one call's
    outputs copied to the host."""

    run: Callable[[], Any]
    outputs: Callable[[], list]
    device_buffers: Any = None  # CUDA: the bound inputs and outputs, alive as long as the runner


class OrtContext:
    """What an onnxruntime builder gets: export, precision reduction, sessions, runners."""

    def __init__(self, backend: "OrtBackend", overrides: Mapping[str, Any] | None, seed: int = 0,
                 options: Any = None):
        import onnxruntime as ort

        self.ort = ort
        self.backend = backend
        self.options = options  # the run's options; None outside a run
        self.device = backend.spec.device
        self.device_index = backend.spec.device_index
        self.precision = backend.spec.precision
        self.overrides = dict(overrides or {})
        self.seed = seed
        self.compile_s = 0.0  # session creation (ORT's graph optimisation), summed
        self.bind_io = self.device == "cuda"  # inputs and outputs kept on the device
        self.notes: dict[str, Any] = {}

    def export(self, model: Any, args: tuple, input_names: tuple[str, ...], output_names: tuple[str, ...],
               key: Hashable) -> bytes:
        """ONNX bytes of the torch ``model`` at fp32 (cached per process under ``key``)."""
        from xpubench.backends.onnxruntime import export as ex

        out = ex.export(model, args, input_names, output_names, key=key)
        self.notes.update(exporter=out.exporter, export_s=out.export_s)
        return out.model

    def at_precision(self, model: bytes, int8_method: str = "dynamic",
                     calibration: list[Mapping] | None = None) -> bytes:
        """``model`` (fp32) at this backend's precision; what was done goes to the notes."""
        from xpubench.backends.onnxruntime import quantize as q

        t0 = time.perf_counter()
        if self.precision == "int8":
            model = q.quantize_int8(model, int8_method, calibration)
            self.notes["quantization"] = q.describe_int8(int8_method)
            if calibration is not None and int8_method == "static":
                self.notes["calibration_batches"] = len(calibration)
        elif self.precision == "fp16":
            model = q.to_fp16(model)
            self.notes["quantization"] = ("fp16 weights and compute (onnxruntime.transformers.float16, "
                                          "fp32 inputs/outputs kept)")
        elif self.precision != "fp32":  # skip_reason keeps these from reaching a builder
            raise ValueError(f"onnxruntime has no {self.precision} mode")
        if self.precision != "fp32":
            self.notes["quantize_s"] = time.perf_counter() - t0
        return model

    def session(self, model: bytes):
        """An InferenceSession on this device; its options and providers go to the notes."""
        ort = self.ort
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.backend.threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3  # errors only: ORT's warnings would land on the worker's stderr
        providers: list[Any] = ["CPUExecutionProvider"]
        if self.device == "cuda":
            providers.insert(0, ("CUDAExecutionProvider", {"device_id": self.device_index}))
        t0 = time.perf_counter()
        sess = ort.InferenceSession(model, sess_options=opts, providers=providers)
        self.compile_s += time.perf_counter() - t0
        used = sess.get_providers()
        if used[0] != PROVIDERS[self.device]:
            raise SkipCase(f"onnxruntime fell back to {used[0]}: the {PROVIDERS[self.device]} did not load")
        self.notes["session"] = {
            "providers": used,
            "intra_op_num_threads": opts.intra_op_num_threads,
            "inter_op_num_threads": opts.inter_op_num_threads,
            "execution_mode": str(opts.execution_mode).split(".")[-1],
            "graph_optimization_level": str(opts.graph_optimization_level).split(".")[-1],
        }
        return sess

    def runner(self, sess, feeds: Mapping[str, Any]) -> OrtRunner:
        """The call to time: plain ``run`` on the CPU, I/O binding on CUDA."""
        names = [o.name for o in sess.get_outputs()]
        if not self.bind_io:
            feeds = dict(feeds)
            return OrtRunner(run=lambda: sess.run(names, feeds), outputs=lambda: sess.run(names, feeds))
        ort = self.ort
        binding = sess.io_binding()
        # Device copies of the inputs, held here for as long as the binding is used.
        on_device = {name: ort.OrtValue.ortvalue_from_numpy(arr, self.device, self.device_index)
                     for name, arr in feeds.items()}
        for name, value in on_device.items():
            binding.bind_ortvalue_input(name, value)
        for name in names:
            binding.bind_output(name, self.device, self.device_index)
        sess.run_with_iobinding(binding)
        # Rebind the outputs the first run allocated: timed calls then allocate nothing.
        outs = binding.get_outputs()
        for name, value in zip(names, outs):
            binding.bind_ortvalue_output(name, value)
        binding.synchronize_outputs()

        def run():
            sess.run_with_iobinding(binding)
            return binding

        def outputs() -> list:
            run()
            return binding.copy_outputs_to_cpu()

        self.notes["session"]["io_binding"] = "inputs and outputs on the device"
        return OrtRunner(run=run, outputs=outputs, device_buffers=(on_device, outs))

    @staticmethod
    def numpy(a) -> Any:
        import numpy as np

        return np.asarray(a, dtype=np.float64)


class OrtBackend(Backend):
    framework = "onnxruntime"
    devices = ("cpu", "cuda")
    software = ("onnxruntime", "onnx", "onnxscript")
    software_optional = (GPU_DIST,)

    def __init__(self, spec: BackendSpec):
        super().__init__(spec)
        self.threads = 1
        self.timing_method = "perf_counter" if spec.device == "cpu" else "perf_counter after io_binding sync"

    # --- parent side ---------------------------------------------------------------
    @classmethod
    def default_specs(cls) -> list[BackendSpec]:
        # Opt-in (-b onnxruntime:...): only the inference suite has onnxruntime builders.
        return []

    def availability(self) -> Availability:
        if not av.module_present("onnxruntime"):
            return Availability(False, f"onnxruntime is not installed ({EXTRA_HINT})")
        for module in ("onnx", "onnxscript", "torch"):  # the exporter's needs
            if not av.module_present(module):
                return Availability(False, f"{module} is not installed; the ONNX export needs it ({EXTRA_HINT})")
        dev = self.spec.device
        if self.spec.precision not in PRECISIONS[dev]:
            return Availability(False, self._precision_reason())
        if dev == "cuda":
            if not av.installed(GPU_DIST):
                return Availability(False, f"no CUDA execution provider: install {GPU_DIST} instead of onnxruntime")
            missing = av.cuda_device_missing(self.spec.device_index)
            if missing:
                return Availability(False, missing)
        return Availability(True)

    def skip_reason(self, case) -> str | None:
        reason = super().skip_reason(case)
        if reason is None and self.spec.precision not in PRECISIONS[self.spec.device]:
            reason = self._precision_reason()
        return reason

    def _precision_reason(self) -> str:
        dev = self.spec.device
        return f"onnxruntime:{dev} runs {'/'.join(PRECISIONS[dev])}, not {self.spec.precision}"

    # --- worker side ---------------------------------------------------------------
    def setup(self, threads: int | None = None) -> dict[str, Any]:
        import onnxruntime as ort

        self._ort = ort
        provider = PROVIDERS[self.spec.device]
        if provider not in ort.get_available_providers():
            raise RuntimeError(f"onnxruntime {ort.__version__} offers no {provider} "
                               f"(available: {', '.join(ort.get_available_providers())})")
        self.threads = threads or physical_cores()
        return {"onnxruntime": ort.__version__, "threads": self.threads,
                "available_providers": ort.get_available_providers(), "device": ort.get_device()}

    def activate(self) -> None:
        """ORT has no process-wide precision switches: the model carries its precision."""

    def context(self, overrides: Mapping[str, Any] | None = None, options: Any = None) -> OrtContext:
        return OrtContext(self, overrides, options=options)

    def build(self, case, overrides: Mapping[str, Any] | None = None, options: Any = None) -> Step:
        ctx = self.context(overrides, options)
        step = case.workload.builders["onnxruntime"](ctx, dict(case.params), case.mode)
        if step.compile_s is None:
            step.compile_s = ctx.compile_s
        step.notes = {**ctx.notes, **step.notes}
        return step

    @property
    def waits(self) -> bool:
        return self.spec.device == "cuda"

    def wait(self, out: Any) -> None:
        if out is not None and hasattr(out, "synchronize_outputs"):
            out.synchronize_outputs()

    def synchronize(self) -> None:
        """Nothing global to wait on: a block waits on its last call's bound outputs."""

    def time_block(self, step: Step, n: int) -> float:
        run = step.run
        t0 = time.perf_counter()
        out = None
        for _ in range(n):
            out = run()
        if self.waits:
            self.wait(out)
        return time.perf_counter() - t0

    def peak_memory(self) -> dict[str, Any]:
        return {"device_peak_bytes": None, "device_method": "unavailable",
                "device_reason": "onnxruntime exposes no allocator peak; see host_peak_bytes"}

    def release(self) -> None:
        import gc

        gc.collect()
