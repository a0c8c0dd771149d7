"""The bundle's files as a user builds them: `make`, CMake, the caller-provided arena API
(`MODEL_NO_STATIC_ARENA` + `model_run`), and no stdio/malloc in the model code; strict flags with
arm-none-eabi-gcc for Cortex-M4 and M0."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from convertkit import api
from convertkit.backends.c_bundle.host import CFLAGS, read_io
from tests.conftest import FIXTURES


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("files") / "bundle"
    api.convert(FIXTURES / "tf" / "digits_cnn", to="c-bundle", output=out, quantize="int8",
                calibration=FIXTURES / "tf" / "digits_calibration.npz")
    return out


def _run(cmd, cwd: Path) -> str:
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"{cmd}: {r.stdout}\n{r.stderr}"
    return r.stdout


def test_make_and_cmake_build_the_same_program(bundle: Path, tmp_path: Path) -> None:
    work = tmp_path / "b"
    shutil.copytree(bundle, work)
    _run(["make", "-s"], work)
    by_make = _run(["./main"], work)
    if shutil.which("cmake") is None:
        pytest.skip("cmake is not installed")
    build = tmp_path / "cmake-build"
    _run(["cmake", "-S", str(work), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release"], tmp_path)
    _run(["cmake", "--build", str(build)], tmp_path)
    assert _run([str(build / "model_example")], tmp_path) == by_make and by_make.startswith("output0:")


def test_model_code_has_no_stdio_no_malloc_no_float(bundle: Path) -> None:
    for name in ("model.c", "model_weights.c", "model.h", "model_weights.h", "ck_runtime.h"):
        text = (bundle / name).read_text()
        assert not re.search(r"#include <(stdio|stdlib)\.h>|\bmalloc\b|\bprintf\b", text), name
        assert not re.search(r"\b(float|double)\b", re.sub(r"/\*.*?\*/", "", text, flags=re.S)
                             .replace("MODEL_INPUT0_SCALE", "").replace("MODEL_OUTPUT0_SCALE", "")) or \
            name == "model.h", name


def test_caller_provided_arena(bundle: Path, tmp_path: Path) -> None:
    """model_run on the caller's arena (no static one compiled in) gives what model_invoke gives."""
    ins, outs = read_io(bundle)
    (tmp_path / "caller.c").write_text("""#include <stdio.h>
#include <string.h>
#include "model.h"
static union { unsigned char b[MODEL_ARENA_SIZE]; long long align; } my_arena;
int main(void)
{
    long i;
    for (i = 0; i < MODEL_INPUT0_SIZE; ++i) MODEL_INPUT0_PTR(my_arena.b)[i] = (MODEL_INPUT0_TYPE)(i * 7 - 50);
    model_run(my_arena.b);
    for (i = 0; i < MODEL_OUTPUT0_SIZE; ++i) printf("%d ", (int)MODEL_OUTPUT0_PTR(my_arena.b)[i]);
    return 0;
}
""")
    (tmp_path / "static.c").write_text("""#include <stdio.h>
#include "model.h"
static MODEL_INPUT0_TYPE x[MODEL_INPUT0_SIZE];
static MODEL_OUTPUT0_TYPE y[MODEL_OUTPUT0_SIZE];
int main(void)
{
    long i;
    for (i = 0; i < MODEL_INPUT0_SIZE; ++i) x[i] = (MODEL_INPUT0_TYPE)(i * 7 - 50);
    model_invoke(x, y);
    for (i = 0; i < MODEL_OUTPUT0_SIZE; ++i) printf("%d ", (int)y[i]);
    return 0;
}
""")
    srcs = [str(bundle / "model.c"), str(bundle / "model_weights.c")]
    _run(["gcc", *CFLAGS, "-DMODEL_NO_STATIC_ARENA", "-I", str(bundle), "-o", "caller", "caller.c", *srcs],
         tmp_path)
    _run(["gcc", *CFLAGS, "-I", str(bundle), "-o", "static", "static.c", *srcs], tmp_path)
    a, b = _run(["./caller"], tmp_path), _run(["./static"], tmp_path)
    assert a == b and len(a.split()) == int(np.prod(outs[0].shape))
    nm = _run(["nm", "caller"], tmp_path)
    assert "model_arena" not in nm and "model_invoke" not in nm


@pytest.fixture(scope="module")
def float_bundle(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("files_f32") / "bundle"
    api.convert(FIXTURES / "tf" / "mobilenet_v3", to="c-bundle", output=out)
    return out


@pytest.mark.parametrize("precision", ["int8", "float32"])
@pytest.mark.parametrize("cpu", [["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"],
                                 ["-mcpu=cortex-m0", "-mthumb", "-mfloat-abi=soft"]])
def test_strict_flags_with_arm_none_eabi_gcc(bundle: Path, float_bundle: Path, tmp_path: Path, cpu,
                                             precision) -> None:
    if shutil.which("arm-none-eabi-gcc") is None:
        pytest.skip("arm-none-eabi-gcc is not installed (CI installs it)")
    bundle = bundle if precision == "int8" else float_bundle
    for src in ("model.c", "model_weights.c", "main.c"):
        _run(["arm-none-eabi-gcc", *cpu, *CFLAGS, "-c", "-o", str(tmp_path / (src + ".o")), str(bundle / src)],
             tmp_path)
