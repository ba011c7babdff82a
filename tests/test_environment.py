"""The machine fingerprint: real values on this machine, fake NVML for GPUs."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from xpubench.hardware import fingerprint as environment
from xpubench.hardware import cpu as cpu_module
from xpubench.hardware.cpu import cpu_threads_info
from xpubench.hardware.fingerprint import fingerprint, validate_machine_id
from tests.fakes.nvml import FakeGpu, FakeNvml, driver_not_loaded, library_not_found, not_supported


def _no_gpu() -> FakeNvml:
    return FakeNvml(gpus=[])


def test_fingerprint_fields_on_this_machine():
    fp = fingerprint(nvml=_no_gpu())
    assert set(fp) >= {"machine_id", "hostname", "os", "cpu", "accelerators", "memory_bytes",
                       "software", "git"}
    assert set(fp["os"]) == {"system", "release", "version", "machine"}
    cpu = fp["cpu"]
    assert isinstance(cpu["model"], str) and cpu["model"]
    assert isinstance(cpu["logical_cores"], int) and cpu["logical_cores"] >= 1
    assert cpu["physical_cores"] is None or 1 <= cpu["physical_cores"] <= cpu["logical_cores"]
    assert cpu["governor"] is None or isinstance(cpu["governor"], str)
    for name in ("avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16"):
        assert name in cpu["flags"]
    if Path("/proc/cpuinfo").exists() and "flags" in Path("/proc/cpuinfo").read_text():
        flags = set(re.search(r"^flags\s*:(.*)$", Path("/proc/cpuinfo").read_text(), re.M).group(1).split())
        assert cpu["flags"]["avx2"] is ("avx2" in flags)
        assert all(isinstance(v, bool) for v in cpu["flags"].values())
    if cpu["freq_mhz"] is not None:
        assert set(cpu["freq_mhz"]) == {"current", "min", "max"}
    assert isinstance(fp["memory_bytes"], int) and fp["memory_bytes"] > 2**28
    assert fp["accelerators"] == []
    json.dumps(fp)  # goes into the results file as is


def test_software_versions_from_metadata_without_importing_frameworks():
    code = ("import sys, xpubench.hardware.fingerprint as e; s = e.software_versions(); "
            "print(s['torch'] is not None, 'torch' in sys.modules, 'jax' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parent.parent, check=True).stdout.split()
    assert out == ["True", "False", "False"]
    sw = environment.software_versions()
    assert sw["python"].count(".") == 2
    for key in ("torch", "jax", "jaxlib", "flax", "optax", "numpy", "nvidia-ml-py", "xpubench"):
        assert key in sw
    assert environment._version("surely-not-an-installed-package-xyz") is None


def test_machine_id_derived_stable_and_folder_safe():
    a = fingerprint(nvml=_no_gpu())["machine_id"]
    b = fingerprint(nvml=_no_gpu())["machine_id"]
    assert a == b
    validate_machine_id(a)
    assert re.fullmatch(r"[a-z0-9.-]+-[0-9a-f]{6}", a)
    assert f"-{environment.cpu_info()['logical_cores']}c-" in a


def test_machine_id_includes_gpus_and_differs_from_cpu_only():
    cpu_only = fingerprint(nvml=_no_gpu())["machine_id"]
    with_gpu = fingerprint(nvml=FakeNvml([FakeGpu(), FakeGpu()]))["machine_id"]
    assert "2xh100-80gb-hbm3" in with_gpu
    assert cpu_only != with_gpu


def test_explicit_machine_id_respected():
    assert fingerprint("lab-box_01.a", nvml=_no_gpu())["machine_id"] == "lab-box_01.a"


@pytest.mark.parametrize("bad", ["", "has space", "a/b", "..", ".hidden", "ü", "x" * 101, "a\\b"])
def test_bad_machine_id_rejected(bad):
    with pytest.raises(ValueError, match="invalid machine id"):
        fingerprint(bad, nvml=_no_gpu())


def test_fake_gpu_appears_in_accelerators():
    fp = fingerprint(nvml=FakeNvml([FakeGpu()]))
    [gpu] = fp["accelerators"]
    assert gpu["kind"] == "cuda" and gpu["index"] == 0
    assert gpu["name"] == "NVIDIA H100 80GB HBM3"
    assert gpu["driver"] == "550.54.15"
    assert gpu["memory_bytes"] == 80 * 2**30
    assert gpu["clocks_mhz"] == {"sm": 1980, "mem": 2619, "sm_max": 1980, "mem_max": 2619}
    assert gpu["uuid"].startswith("GPU-")
    assert gpu["compute_capability"] == "9.0"
    assert gpu["power_limit_w"] == 700.0


def test_unsupported_gpu_field_is_none_not_crash():
    fake = FakeNvml([FakeGpu()])
    def unsupported(*_a):
        raise not_supported()
    fake.nvmlDeviceGetMaxClockInfo = unsupported
    [gpu] = fingerprint(nvml=fake)["accelerators"]
    assert gpu["clocks_mhz"]["sm_max"] is None and gpu["clocks_mhz"]["sm"] == 1980


@pytest.mark.parametrize("make_error", [library_not_found, driver_not_loaded, not_supported])
def test_nvml_failure_gives_empty_accelerators(make_error):
    fp = fingerprint(nvml=FakeNvml([FakeGpu()], init_error=make_error()))
    assert fp["accelerators"] == []


def test_device_count_error_gives_empty_accelerators():
    fake = FakeNvml([FakeGpu()])
    def broken():
        raise driver_not_loaded()
    fake.nvmlDeviceGetCount = broken
    assert fingerprint(nvml=fake)["accelerators"] == []


def test_real_pynvml_without_driver_is_not_a_crash():
    # This machine has no NVIDIA driver: the real module raises LibraryNotFound.
    fp = fingerprint()
    assert isinstance(fp["accelerators"], list)


def test_git_info_of_a_checkout_and_outside(tmp_path):
    assert environment.git_info(tmp_path) is None
    repo = tmp_path / "repo"
    repo.mkdir()
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t", "HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    run = lambda *a: subprocess.run(["git", "-C", str(repo), *a], check=True,  # noqa: E731
                                    capture_output=True, env=env)
    run("init", "-q", "-b", "trunk")
    (repo / "f.txt").write_text("1")
    run("add", "f.txt")
    run("commit", "-q", "-m", "one")
    info = environment.git_info(repo)
    assert info is not None and re.fullmatch(r"[0-9a-f]{40}", info["commit"])
    assert info["branch"] == "trunk" and info["dirty"] is False
    (repo / "f.txt").write_text("2")
    assert environment.git_info(repo)["dirty"] is True


def test_cpu_threads_info():
    info = cpu_threads_info()
    assert info["logical_cores"] >= 1
    assert info["affinity_cores"] is None or 1 <= info["affinity_cores"] <= info["logical_cores"]
    assert set(info["thread_env"]) >= {"OMP_NUM_THREADS", "MKL_NUM_THREADS"}


def test_cpuinfo_parser_counts_physical_cores():
    text = ("processor\t: 0\nmodel name\t: Test CPU\nphysical id\t: 0\ncore id\t: 0\nflags\t: avx2\n\n"
            "processor\t: 1\nmodel name\t: Test CPU\nphysical id\t: 0\ncore id\t: 0\nflags\t: avx2\n\n"
            "processor\t: 2\nmodel name\t: Test CPU\nphysical id\t: 0\ncore id\t: 1\nflags\t: avx2\n")
    fields = cpu_module._parse_cpuinfo(text)
    assert fields["model name"] == "Test CPU"
    assert fields["_physical_pairs"] == "2"


@pytest.mark.parametrize("model, slug", [
    ("Intel(R) Xeon(R) Platinum 8480+", "intel-xeon-8480"),
    ("AMD EPYC 9654 96-Core Processor", "amd-epyc-9654"),
    ("Apple M2 Max", "apple-m2-max"),
    ("11th Gen Intel(R) Core(TM) i7-1185G7 @ 3.00GHz", "intel-i7-1185g7"),
])
def test_cpu_model_slug(model, slug):
    assert environment._slug(model, drop=environment._CPU_NOISE, limit=28) == slug


def test_this_checkout_reports_its_commit():
    """Run files name the commit they were measured at (compare --confirm re-measures only the same build)."""
    root = Path(__file__).resolve().parents[1]
    if not (root / ".git").exists():
        pytest.skip("not a git checkout")
    head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert environment.git_info()["commit"] == head
