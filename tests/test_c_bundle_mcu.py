"""The C bundle on Cortex-M: cross-compiled with arm-none-eabi-gcc, run under qemu (mps2-an386,
semihosting), its printed outputs identical to the host build's; an int8 bundle built for Cortex-M0
with soft-float links no floating-point helper (integer-only, proven on the linked ELF), and its
ARM DSP path (Cortex-M4) gives the same outputs as the portable one."""
from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from convertkit import api
from convertkit.backends.c_bundle.host import compile_example
from tests.conftest import ROOT
from tools.mcu import mcu

MODELS = ROOT.parent / "shared" / "models" / "mlperf_tiny"
INT8_MODELS = {"ad01": MODELS / "anomaly_detection" / "ad01_int8.tflite",
               "kws": MODELS / "keyword_spotting" / "kws_ref_model.tflite"}

pytestmark = pytest.mark.skipif(not mcu.have_toolchain(),
                                reason="arm-none-eabi-gcc / qemu-system-arm not installed (CI installs them)")


def _host_stdout(folder: Path) -> str:
    exe = compile_example(folder, folder / "main_host")
    return subprocess.run([str(exe)], capture_output=True, text=True, check=True, timeout=120).stdout


def _mcu(folder: Path, cpu: str, defines=()) -> tuple[Path, mcu.RunResult]:
    srcs = [folder / f for f in ("main.c", "model.c", "model_weights.c")]
    elf = mcu.build(srcs, folder / f"main_{cpu}.elf", cpu=cpu, include_dirs=[folder], defines=defines)
    return elf, mcu.run(elf, timeout=300)


@pytest.fixture(scope="module", params=sorted(INT8_MODELS))
def int8_bundle(request, tmp_path_factory) -> Path:
    path = INT8_MODELS[request.param]
    if not path.exists():
        pytest.skip(f"{path} is absent (the shared models folder is not beside the repository)")
    out = tmp_path_factory.mktemp(request.param) / "bundle"
    api.convert(path, to="c-bundle", output=out)
    return out


def test_int8_bundle_on_cortex_m4_matches_host(int8_bundle):
    host = _host_stdout(int8_bundle)
    _, res = _mcu(int8_bundle, "cortex-m4")
    assert res.exit_code == 0 and not res.faulted, res.stderr
    assert res.stdout == host and host.startswith("output0:")


def test_int8_bundle_on_cortex_m0_is_integer_only(int8_bundle):
    elf, res = _mcu(int8_bundle, "cortex-m0")
    assert mcu.float_helper_symbols(elf) == set()
    assert res.exit_code == 0 and not res.faulted, res.stderr
    assert res.stdout == _host_stdout(int8_bundle)


def test_portable_path_on_cortex_m4_matches_dsp_path(int8_bundle):
    """__ARM_FEATURE_DSP is defined for Cortex-M4; undefining it forces the portable C."""
    _, dsp = _mcu(int8_bundle, "cortex-m4")
    _, portable = _mcu(int8_bundle, "cortex-m4", defines=["CK_NO_DSP"])
    assert dsp.stdout == portable.stdout


def test_float_bundle_on_cortex_m4_close_to_host(tmp_path):
    """float32 on the M4's FPU: newlib's and glibc's expf/tanhf may differ in the last bit, so the
    outputs are compared as numbers (1e-5 relative), not as text."""
    out = tmp_path / "bundle"
    api.convert(ROOT / "fixtures" / "tf" / "small_cnn", to="c-bundle", output=out)
    host = _host_stdout(out)
    _, res = _mcu(out, "cortex-m4")
    assert res.exit_code == 0 and not res.faulted, res.stderr

    def values(text: str) -> np.ndarray:
        words = [w for line in text.splitlines() for w in line.split()[1:]]
        return np.array([int(w, 16) for w in words], np.uint32).view(np.float32)
    a, b = values(host), values(res.stdout)
    assert a.size > 0 and a.shape == b.shape
    np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
