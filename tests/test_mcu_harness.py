"""The Cortex-M test-and-bench harness (tools/mcu) proven on a real program.

A small integer C program (CRC32 over a generated buffer, an int8 dot product) is built for the host,
for Cortex-M4 (hard float) and for Cortex-M0 (soft float), run under qemu, and must print exactly what
the host build prints and pass main's return value through as the exit code. Skipped only when the
ARM toolchain / qemu are absent (CI installs them).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tools.mcu import mcu

ROOT = Path(__file__).resolve().parent.parent
SHARED_MODELS = ROOT.parent / "shared" / "models"
AD01 = SHARED_MODELS / "mlperf_tiny" / "anomaly_detection" / "ad01_int8.tflite"

needs_toolchain = pytest.mark.skipif(
    not mcu.have_toolchain(), reason="arm-none-eabi-gcc / qemu-system-arm not installed"
)

PROGRAM_C = r"""
#include <stdint.h>
#include <stdio.h>

#ifndef WORK
#define WORK 1
#endif
#define N 1024

static uint8_t buf[N];
static int8_t a[N], b[N];

static uint32_t crc32(const uint8_t *p, int n, uint32_t crc)
{
    crc = ~crc;
    for (int i = 0; i < n; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}

__attribute__((noinline)) int32_t work(void)
{
    uint32_t crc = 0;
    int32_t acc = 0;
    for (int r = 0; r < WORK; r++) {
        crc = crc32(buf, N, crc);
        for (int i = 0; i < N; i++)
            acc += (int32_t)a[i] * (int32_t)b[(i + r) % N];
    }
    printf("crc32=%08lx dot=%ld\n", (unsigned long)crc, (long)acc);
    return (int32_t)(crc % 200u) + 3 + acc % 7;
}

int main(void)
{
    uint32_t s = 12345u;
    for (int i = 0; i < N; i++) {
        s = s * 1664525u + 1013904223u;
        buf[i] = (uint8_t)(s >> 24);
        a[i] = (int8_t)(s >> 16);
        b[i] = (int8_t)(s >> 8);
    }
    int64_t q = (int64_t)s * -7 / 3; /* 64-bit integer division: integer helpers only */
    printf("seed=%lu q=%ld\n", (unsigned long)s, (long)(q % 100000));
    int rc = work();
    printf("rc=%d\n", rc);
    return rc;
}
"""

FLOAT_C = r"""
#include <stdio.h>
__attribute__((noinline)) float ratio(float x, float y) { return x / y; }
int main(void)
{
    volatile float x = 7.0f, y = 2.0f;
    printf("%d\n", (int)(ratio(x, y) * 100.0f));
    return 0;
}
"""


@pytest.fixture(scope="module")
def host_built(tmp_path_factory):
    d = tmp_path_factory.mktemp("mcu")
    src = d / "program.c"
    src.write_text(PROGRAM_C)
    host = mcu.build_host([src], d / "program_host")
    proc = subprocess.run([str(host)], check=False, capture_output=True, text=True, timeout=30)
    return {"dir": d, "src": src, "host": host, "host_stdout": proc.stdout, "host_rc": proc.returncode}


@pytest.fixture(scope="module")
def built(host_built):
    if not mcu.have_toolchain():
        pytest.skip("arm-none-eabi-gcc / qemu-system-arm not installed")
    d, src = host_built["dir"], host_built["src"]
    return {
        **host_built,
        "m4": mcu.build([src], d / "program_m4.elf", cpu="cortex-m4"),
        "m0": mcu.build([src], d / "program_m0.elf", cpu="cortex-m0"),
        "m55": mcu.build([src], d / "program_m55.elf", cpu="cortex-m55"),
    }


def test_host_reference_is_meaningful(host_built):
    out = host_built["host_stdout"]
    assert out.startswith("seed=") and "crc32=" in out and "rc=" in out
    assert host_built["host_rc"] not in (0, 1)  # a computed value, distinguishable from success/fault


@needs_toolchain
@pytest.mark.parametrize("cpu", ["m4", "m0", "m55"])
def test_qemu_output_and_exit_code_match_host(built, cpu):
    r = mcu.run(built[cpu], timeout=60)
    assert not r.faulted, r.stdout
    assert r.stdout == built["host_stdout"]
    assert r.exit_code == built["host_rc"]


@needs_toolchain
def test_builds_target_the_requested_architecture(built):
    assert mcu.cpu_arch(built["m4"]) == "v7E-M"
    assert mcu.cpu_arch(built["m0"]) == "v6S-M"
    assert mcu.cpu_arch(built["m55"]) == "v8.1-M.mainline"
    s = mcu.size(built["m0"])
    assert set(s) == {"text", "data", "bss"} and s["text"] > 0 and s["bss"] >= 3 * 1024
    syms = mcu.symbols_size(built["m0"], "work")
    assert syms.get("work", 0) > 0


@needs_toolchain
def test_m0_build_also_runs_on_a_real_cortex_m0_model(built):
    # mps2-an386 (M4) runs ARMv6-M code too; qemu's micro:bit board is a Cortex-M0 that faults on any
    # ARMv7-M instruction, which proves the M0 build is ARMv6-M only.
    r = mcu.run(built["m0"], board="microbit", timeout=60)
    assert not r.faulted
    assert (r.stdout, r.exit_code) == (built["host_stdout"], built["host_rc"])
    r4 = mcu.run(built["m4"], board="microbit", timeout=60)
    assert r4.faulted and r4.exit_code == 1  # the M4 build uses Thumb-2 / FPU instructions


@needs_toolchain
def test_soft_float_helper_detection(built):
    assert mcu.float_helper_symbols(built["m0"]) == set()
    d = built["dir"]
    src = d / "float.c"
    src.write_text(FLOAT_C)
    elf = mcu.build([src], d / "float_m0.elf", cpu="cortex-m0")
    helpers = mcu.float_helper_symbols(elf)
    assert "__aeabi_fdiv" in helpers
    assert "__aeabi_fdiv" in mcu.linked_symbols(elf)
    r = mcu.run(elf, timeout=60)
    assert (r.stdout, r.exit_code) == ("350\n", 0)
    # With the M4's FPU the same division is one instruction: no helper.
    elf4 = mcu.build([src], d / "float_m4.elf", cpu="cortex-m4")
    assert "__aeabi_fdiv" not in mcu.float_helper_symbols(elf4)
    assert mcu.run(elf4, timeout=60).stdout == "350\n"


@needs_toolchain
def test_instruction_count_is_deterministic_and_grows_with_work(built):
    a = mcu.run(built["m4"], count=True, cache_dir=built["dir"] / "cache")
    b = mcu.run(built["m4"], count=True, cache_dir=built["dir"] / "cache")
    assert a.instructions is not None and a.instructions > 10_000
    assert a.instructions == b.instructions
    assert mcu.run(built["m4"]).instructions is None
    more = mcu.build([built["src"]], built["dir"] / "program_m4_w4.elf", cpu="cortex-m4", defines=["WORK=4"])
    c = mcu.run(more, count=True, cache_dir=built["dir"] / "cache")
    # 3 extra rounds of CRC32 (8 bit steps per byte) + dot product over 1024 elements
    assert c.instructions > a.instructions + 3 * 1024 * 8 * 3


HEAP_C = r"""
#include <stdio.h>
#include <stdlib.h>
int main(void)
{
    unsigned char *p = malloc(100000), *q = malloc(8u << 20); /* 8 MB is more than any board's heap */
    for (int i = 0; i < 100000; i++) p[i] = (unsigned char)i;
    long s = 0;
    for (int i = 0; i < 100000; i++) s += p[i];
    printf("%ld %d\n", s, q == NULL);
    return 0;
}
"""


@needs_toolchain
@pytest.mark.parametrize("cpu", ["cortex-m4", "cortex-m55"])
def test_heap_works_and_is_bounded(tmp_path, cpu):
    src = tmp_path / "heap.c"
    src.write_text(HEAP_C)
    r = mcu.run(mcu.build([src], tmp_path / "heap.elf", cpu=cpu), timeout=60)
    expected = sum(i % 256 for i in range(100000))
    assert (r.stdout, r.exit_code, r.faulted) == (f"{expected} 1\n", 0, False)


@needs_toolchain
def test_hung_program_times_out(tmp_path):
    src = tmp_path / "hang.c"
    src.write_text('int main(void) { for (;;) { __asm__ volatile(""); } }\n')
    with pytest.raises(TimeoutError):
        mcu.run(mcu.build([src], tmp_path / "hang.elf"), timeout=1)


@needs_toolchain
def test_build_failure_reports_compiler_error(tmp_path):
    src = tmp_path / "bad.c"
    src.write_text("int main(void) { return undefined_thing; }\n")
    with pytest.raises(RuntimeError, match="undefined_thing"):
        mcu.build([src], tmp_path / "bad.elf")


@pytest.mark.skipif(not mcu.have_valgrind(), reason="valgrind not installed")
def test_host_instructions_with_toggle(host_built):
    exe = host_built["host"]
    # the program's exit code is its result (not 0): check=False accepts it
    with pytest.raises(RuntimeError, match="exit"):
        mcu.host_instructions(exe)
    total = mcu.host_instructions(exe, check=False)
    inside = mcu.host_instructions(exe, toggle="work", check=False)
    assert 0 < inside < total
    assert mcu.host_instructions(exe, toggle="work", check=False) == inside
    with pytest.raises(RuntimeError, match="collected nothing"):
        mcu.host_instructions(exe, toggle="no_such_function_xyz", check=False)


@pytest.mark.skipif(not AD01.exists(), reason="shared models folder absent")
def test_tflm_arena_bytes_matches_notes():
    pytest.importorskip("tflite_micro")
    n = mcu.tflm_arena_bytes(AD01)
    assert abs(n - 4636) <= 300, n


@pytest.mark.skipif(not AD01.exists(), reason="shared models folder absent")
@pytest.mark.skipif(not mcu.have_valgrind(), reason="valgrind not installed")
def test_tflm_instructions_matches_notes():
    pytest.importorskip("tflite_micro")
    np = pytest.importorskip("numpy")
    x = np.random.default_rng(0).integers(-128, 128, size=(1, 640), dtype=np.int8)
    n = mcu.tflm_instructions(AD01, x)
    assert abs(n - 2.51e6) < 0.02 * 2.51e6, n  # NOTES.md: 2.51 M for one inference
