"""int8 Conv / depthwise / 1-D conv / Gemm / MatMul C kernels of the C bundle: compiled with gcc and clang
(strict flags), run on seeded int8 inputs, bit-exact with the IR's reference interpreter (TFLite Micro's
integer arithmetic); the MLPerf Tiny anomaly-detection model bit-exact with the IR and with TFLite Micro;
the ARM DSP path (SXTB16 + SMLAD) built for Cortex-M4, run under qemu, identical to the host build."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from convertkit.backends.c_bundle import export
from convertkit.canonical_ir.graph import Graph, QuantParams
from convertkit.canonical_ir.interpreter import run
from convertkit.canonical_ir.ops.registry import FUSED_ACTIVATION
from convertkit.canonical_ir.passes.infer import infer_shapes

from tests.c_bundle_util import compile_bundle, compilers, graph_out_specs, run_bundle
from tests.conftest import ROOT

I8, I32, F32 = np.int8, np.int32, np.float32
N_INPUTS = 6
MODELS = ROOT.parent / "shared" / "models"
AD01 = MODELS / "mlperf_tiny" / "anomaly_detection" / "ad01_int8.tflite"


def qp(scale, zp=0, axis=None, dtype=I8) -> QuantParams:
    return QuantParams(np.asarray(scale, F32), np.asarray(zp, dtype), axis)


def single_op(op: str, x_shape: tuple, w: np.ndarray, attrs: dict, *, seed: int, per_channel: bool = True,
              w_zp: int = 0, bias: bool = True, n_out_axis: int = 0, k: int | None = None,
              act: tuple | None = None, g: Graph | None = None, prefix: str = "",
              sy_factor: float | None = None) -> Graph:
    """One quantized ``op`` node: int8 input (zp 3), int8 weights ``w`` (per-channel symmetric along
    ``n_out_axis`` or per-tensor with zero point ``w_zp``), optional int32 bias, int8 output whose scale
    keeps most outputs off the clamp (so the test sees the arithmetic, not saturation). Built into ``g``
    (a new graph by default) with tensor names prefixed by ``prefix``."""
    rng = np.random.default_rng(seed)
    n_out = w.shape[n_out_axis]
    k = k if k is not None else w.size // n_out
    g = g if g is not None else Graph(op.lower())
    x, y = f"{prefix}x", f"{prefix}y"
    g.add_input(x, I8, x_shape)
    sx = F32(0.02 + 0.03 * rng.random())
    g.tensor(x).quant = qp(sx, 3)
    if per_channel:
        sw = (0.004 + 0.006 * rng.random(n_out)).astype(F32)
        wq = qp(sw, np.zeros(n_out, np.int64), axis=n_out_axis)
    else:
        sw = np.full(n_out, F32(0.004 + 0.006 * rng.random()))
        wq = qp(sw[0], w_zp)
    if w_zp:                                                # keep w - zp in int8 (else refused, see below)
        w = np.clip(w.astype(np.int64), -128 + w_zp, 127 + w_zp)
    wt = g.add_const(w.astype(I8), f"{prefix}w")
    g.tensor(wt).quant = wq
    inputs = [x, wt]
    spread = 74.0 * 73.0 * np.sqrt(k)                       # std of the int32 accumulator
    if bias:
        bq = (sx * sw).astype(F32)
        b = g.add_const(rng.integers(-int(spread), int(spread) + 1, n_out).astype(I32), f"{prefix}b")
        g.tensor(b).quant = qp(bq, np.zeros(n_out, np.int64), axis=0, dtype=I32)
        inputs.append(b)
    sy = F32(float(sx) * float(np.mean(sw)) * (spread / 45.0 if sy_factor is None else sy_factor))
    g.add_tensor(y, I8, None, quant=qp(sy, -5))
    if act is not None:
        attrs = {**attrs, FUSED_ACTIVATION: act}
    g.add_node(op, inputs, [y], attrs, name=f"{prefix}{op.lower()}")
    g.outputs.append(y)
    infer_shapes(g)
    return g


def rand_w(shape, seed) -> np.ndarray:
    return np.random.default_rng(seed).integers(-127, 128, shape).astype(I8)


CONV_CASES = {
    # name: (x NHWC, w [O, kH, kW, I/group], attrs, extra)
    "3x3_s1_same": ((1, 8, 8, 5), (6, 3, 3, 5), {"auto_pad": "SAME_UPPER"}, {}),
    "3x3_s2_same_relu": ((1, 9, 10, 4), (7, 3, 3, 4), {"auto_pad": "SAME_UPPER", "strides": [2, 2]},
                         {"act": ("Relu",)}),
    "3x3_s2_same_even": ((1, 8, 8, 3), (4, 3, 3, 3), {"auto_pad": "SAME_UPPER", "strides": [2, 2]}, {}),
    "3x3_valid_relu6": ((1, 7, 6, 8), (5, 3, 3, 8), {"auto_pad": "VALID"}, {"act": ("Clip", 0.0, 6.0)}),
    "1x1_per_tensor_no_bias": ((1, 6, 6, 16), (8, 1, 1, 16), {}, {"per_channel": False, "bias": False}),
    "1x1_per_tensor_wzp": ((1, 4, 5, 12), (6, 1, 1, 12), {}, {"per_channel": False, "w_zp": 7}),
    "5x5_dilated": ((1, 12, 11, 3), (4, 5, 5, 3), {"dilations": [2, 2], "pads": [4, 4, 4, 4]}, {}),
    "asym_pads_strides": ((1, 9, 8, 6), (5, 3, 2, 6), {"pads": [0, 1, 2, 0], "strides": [2, 1]}, {}),
    "big_pads": ((1, 4, 4, 3), (3, 3, 3, 3), {"pads": [4, 4, 4, 4]}, {}),
    "4x4_s2_same_lower": ((1, 9, 8, 5), (6, 4, 4, 5), {"auto_pad": "SAME_LOWER", "strides": [2, 2]}, {}),
    "odd_channels_3x3": ((1, 6, 7, 7), (9, 3, 3, 7), {"pads": [1, 1, 1, 1], "strides": [1, 2]}, {}),
    "batch2": ((2, 6, 6, 4), (5, 3, 3, 4), {"pads": [1, 1, 1, 1]}, {"act": ("Relu",)}),
    "group2": ((1, 7, 7, 8), (6, 3, 3, 4), {"group": 2, "pads": [1, 1, 1, 1]}, {}),
    "dw_m1": ((1, 8, 8, 6), (6, 3, 3, 1), {"group": 6, "pads": [1, 1, 1, 1]}, {}),
    "dw_m1_s2_relu6_no_bias": ((1, 9, 9, 16), (16, 3, 3, 1), {"group": 16, "auto_pad": "SAME_UPPER",
                                                              "strides": [2, 2]},
                               {"act": ("Clip", 0.0, 6.0), "bias": False}),
    "dw_m2_s2": ((1, 9, 9, 4), (8, 3, 3, 1), {"group": 4, "auto_pad": "SAME_UPPER", "strides": [2, 2]},
                 {"act": ("Relu",)}),
    "dw_5x5_dilated": ((1, 10, 10, 5), (5, 5, 5, 1), {"group": 5, "dilations": [2, 2], "pads": [4, 4, 4, 4]},
                       {}),
    "conv1d": ((1, 20, 6), (5, 3, 6), {"pads": [1, 1]}, {}),
    "conv1d_s2_dilated": ((2, 25, 4), (6, 5, 4), {"strides": [2], "dilations": [2], "auto_pad": "SAME_UPPER"},
                          {"act": ("Relu",)}),
    "dw_conv1d": ((1, 16, 8), (8, 3, 1), {"group": 8, "pads": [1, 1]}, {}),
    "dw_same_lower_m3": ((1, 7, 6, 3), (9, 2, 2, 1), {"group": 3, "auto_pad": "SAME_LOWER"}, {}),
}


CONV_T_CASES = {
    # TRANSPOSE_CONV, NHWC weights [O, kH, kW, I/group]
    "convT_3x3_s2_outpad": ((1, 4, 5, 6), (5, 3, 3, 6), {"strides": [2, 2], "pads": [1, 1, 1, 1],
                                                        "output_padding": [1, 1]}, {}),
    "convT_2x2_s2_relu": ((1, 3, 3, 8), (4, 2, 2, 8), {"strides": [2, 2]}, {"act": ("Relu",), "bias": False}),
    "convT_same_group2": ((1, 5, 4, 4), (6, 3, 3, 2), {"strides": [2, 2], "auto_pad": "SAME_UPPER", "group": 2},
                          {}),
    "convT_1d_s2_dilated": ((1, 7, 5), (4, 3, 5), {"strides": [2], "dilations": [2]}, {}),
}


def conv_case(name: str, seed: int, **where) -> Graph:
    op = "ConvTranspose" if name in CONV_T_CASES else "Conv"
    xs, ws, attrs, extra = {**CONV_CASES, **CONV_T_CASES}[name]
    k = ws[-1] * int(np.prod(ws[1:-1])) // (2 if op == "ConvTranspose" else 1)   # taps per output, roughly
    return single_op(op, xs, rand_w(ws, seed), {"layout": "NHWC", **attrs}, seed=seed, k=k, **extra, **where)


DENSE_CASES = {
    # Gemm = FULLY_CONNECTED; weights [N, K] (transB) per channel along N; 3 rows
    "gemm_per_channel": lambda **w: single_op("Gemm", (3, 20), rand_w((7, 20), 1), {"transB": 1}, seed=1, **w),
    # per-tensor weights: the multiplier's float32 product s_a * s_w (TFLite's per-tensor FC)
    "gemm_per_tensor_relu": lambda **w: single_op("Gemm", (2, 33), rand_w((33, 9), 2), {}, seed=2,
                                                  per_channel=False, n_out_axis=1, act=("Relu",), **w),
    "gemm_per_tensor_wzp_no_bias": lambda **w: single_op("Gemm", (1, 16), rand_w((5, 16), 3), {"transB": 1},
                                                         seed=3, per_channel=False, w_zp=-4, bias=False, **w),
    "gemm_transA": lambda **w: single_op("Gemm", (12, 2), rand_w((12, 6), 4), {"transA": 1}, seed=4,
                                         n_out_axis=1, k=12, act=("Clip", 0.0, 6.0), **w),
    "matmul_batched": lambda **w: single_op("MatMul", (2, 3, 24), rand_w((24, 10), 5), {}, seed=5,
                                            per_channel=False, bias=False, n_out_axis=1, **w),
    # per-channel multipliers on both sides of 1 (left shifts for some channels, right for others)
    "conv1x1_multipliers_around_1": lambda **w: single_op(
        "Conv", (1, 5, 5, 3), np.random.default_rng(7).integers(-1, 2, (6, 1, 1, 3)).astype(I8),
        {"layout": "NHWC"}, seed=7, bias=False, sy_factor=1.3, **w),
    "matmul_per_channel": lambda **w: single_op("MatMul", (4, 17), rand_w((17, 6), 6), {}, seed=6, bias=False,
                                                n_out_axis=1, **w),
}
CASES = [*CONV_CASES, *CONV_T_CASES, *DENSE_CASES]


def build_case(name: str, **where) -> Graph:
    """Case ``name`` as its own graph, or (``g=..., prefix=...``) added to a graph."""
    if name in DENSE_CASES:
        return DENSE_CASES[name](**where)
    return conv_case(name, CASES.index(name) + 10, **where)


def int8_feeds(graph: Graph, n: int, seed: int) -> list[list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [[rng.integers(-128, 128, graph.tensor(t).shape).astype(I8) for t in graph.inputs] for _ in range(n)]


def check_bundle(graph: Graph, folder: Path, feeds: list[list[np.ndarray]], ccs) -> list[list[np.ndarray]]:
    """Export, compile with each of ``ccs``, run ``feeds``; assert every output equals the IR's.
    Returns the IR's outputs per feed."""
    export(graph, folder)
    refs = []
    for f in feeds:
        r = run(graph, dict(zip(graph.inputs, f)))
        refs.append([r[o] for o in graph.outputs])
    for cc in ccs:
        got = run_bundle(compile_bundle(folder, cc), feeds, graph_out_specs(graph))
        for i, (gs, rs) in enumerate(zip(got, refs)):
            for name, g_, r in zip(graph.outputs, gs, rs):
                assert g_.dtype == r.dtype and g_.shape == r.shape
                if not np.array_equal(g_, r):
                    bad = int(np.sum(g_ != r))
                    raise AssertionError(f"{name} ({cc}), input {i}: {bad} of {r.size} outputs differ from "
                                         f"the IR, max |diff| {np.abs(g_.astype(int) - r).max()}")
    return refs


GRAPHS = {name: build_case(name) for name in CASES}


@pytest.fixture(scope="module")
def all_cases(tmp_path_factory):
    """Every case side by side in one bundle (one compile per compiler): each case has its own input
    ``<case>_x`` and output ``<case>_y``; checked bit-exact with the IR on N_INPUTS seeded records."""
    g = Graph("all_cases")
    for name in CASES:
        build_case(name, g=g, prefix=f"{name}_")
    infer_shapes(g)
    folder = tmp_path_factory.mktemp("int8_conv") / "b"
    feeds = int8_feeds(g, N_INPUTS, seed=100)
    refs = check_bundle(g, folder, feeds, compilers())
    return g, refs, (folder / "model.c").read_text()


def test_all_cases_compile_integer_only(all_cases):
    g, _, src = all_cases
    assert len(g.outputs) == len(CASES) and compilers()[0] == "gcc"
    assert "float" not in src and "double" not in src


@pytest.mark.parametrize("name", CASES)
def test_int8_kernel_bit_exact_with_the_ir(name, all_cases):
    g, refs, _ = all_cases                      # the bundle's outputs equal these (checked by the fixture)
    i = g.outputs.index(f"{name}_y")
    y = np.stack([r[i] for r in refs])
    # the case exercises the arithmetic: outputs vary and mostly stay off the int8 limits
    assert len(np.unique(y)) > 10, (name, np.unique(y))
    assert np.mean((y == -128) | (y == 127)) < 0.3, (name, int(y.min()), int(y.max()))
    node = next(n for n in g.topo_order() if g.outputs_of(n)[0] == f"{name}_y")
    assert node.op == ("Gemm" if name.startswith("gemm") else "MatMul" if name.startswith("matmul") else
                       "ConvTranspose" if name.startswith("convT") else "Conv")


def test_requantization_helper_matches_the_ir_fixed_point(tmp_path):
    """ck_requant_s8 (the high multiply as a floor shift) against the IR's MultiplyByQuantizedMultiplier
    on random and extreme accumulators, multipliers from QuantizeMultiplier of reals across 1e-7..300."""
    from convertkit.backends.c_bundle.files import runtime_header
    from convertkit.canonical_ir.quantize import fixedpoint as fx
    rng = np.random.default_rng(11)
    n = 4000
    acc = rng.integers(-2**31, 2**31, n)
    acc[:8] = [-2**31, 2**31 - 1, 0, -1, 1, -2**30, 2**30, 12345]
    acc[8:2000] = rng.integers(-70000, 70000, 1992)
    real = 10 ** rng.uniform(-7, 2.5, n)
    # and accumulators that land inside the int8 range after scaling (the rounding matters there)
    acc[2000:3600] = np.clip(np.round(rng.uniform(-150, 150, 1600) / real[2000:3600]), -2**31, 2**31 - 1)
    m, shift = fx.quantize_multiplier(real)
    zp = rng.integers(-128, 128, n)
    lo = np.where(rng.random(n) < 0.5, -128, rng.integers(-128, 0, n))
    hi = np.where(rng.random(n) < 0.5, 127, rng.integers(0, 128, n))
    want = np.clip(fx.multiply_by_quantized_multiplier(acc, m, shift) + zp, lo, hi)
    (tmp_path / "ck_runtime.h").write_text(runtime_header())
    rows = ",\n".join(f"{{{'(-2147483647 - 1)' if a == -2**31 else a}, {mm}, {max(sh, 0)}, {max(-sh, 0)}, "
                       f"{z}, {l}, {h}}}" for a, mm, sh, z, l, h in zip(acc, m, shift, zp, lo, hi))
    (tmp_path / "t.c").write_text(f"""#include <stdio.h>
#include "ck_runtime.h"
static const int32_t cases[{n}][7] = {{ {rows} }};
int main(void)
{{
    int i;
    for (i = 0; i < {n}; ++i) {{
        printf("%d\\n", (int)ck_requant_s8(cases[i][0], cases[i][1], (int)cases[i][2], (int)cases[i][3],
                                          cases[i][4], cases[i][5], cases[i][6]));
    }}
    return 0;
}}
""")
    for cc in compilers():
        exe = tmp_path / f"t_{cc}"
        subprocess.run([cc, "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-pedantic", "-o", str(exe),
                        str(tmp_path / "t.c")], check=True)
        got = np.array(subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.split(),
                       np.int64)
        np.testing.assert_array_equal(got, want)


def test_kinds_of_conv_take_their_paths(tmp_path):
    """Depthwise: four channels at a time in registers (multiplier 1), else a row of accumulators in
    scratch; the padded cases split interior and border windows."""
    export(GRAPHS["dw_m1"], tmp_path / "dw1")
    src = (tmp_path / "dw1" / "model.c").read_text()
    assert "ck_mac4_s8(" in src and "ck_mac4_s8_zp(" in src and "scratch" not in src
    export(GRAPHS["dw_m2_s2"], tmp_path / "dw")
    src = (tmp_path / "dw" / "model.c").read_text()
    assert "w_dw" in src and "(int32_t *)(void *)scratch" in src
    export(GRAPHS["3x3_s1_same"], tmp_path / "c")
    src = (tmp_path / "c" / "model.c").read_text()
    assert "ck_dot4_s8(" in src and "ck_dot4_s8_zp(" in src and "ck_dot2_s8_zp(" in src


def test_int16_activations_are_refused_with_a_reason():
    from convertkit.backends.c_bundle.emit import find_kernel
    g = single_op("Conv", (1, 4, 4, 2), rand_w((3, 1, 1, 2), 0), {"layout": "NHWC"}, seed=0)
    x = g.tensor("x")
    x.dtype = np.dtype(np.int16)
    x.quant = qp(0.01, 0, dtype=np.int16)
    g.tensor("y").dtype = np.dtype(np.int16)
    g.tensor("y").quant = qp(0.01, 0, dtype=np.int16)
    node = next(iter(g.topo_order()))
    k, why = find_kernel(g, node)
    assert k is None and "int8 activations" in why and "16x8" in why


def test_weights_whose_zero_point_leaves_int8_are_refused():
    from convertkit.backends.c_bundle.emit import find_kernel
    g = single_op("Gemm", (1, 8), rand_w((4, 8), 0), {"transB": 1}, seed=0, per_channel=False, w_zp=9)
    w = next(t for t in g.inputs_of(next(iter(g.topo_order()))) if t and g.tensor(t).is_const)
    g.tensor(w).value = np.full((4, 8), -128, I8)
    k, why = find_kernel(g, next(iter(g.topo_order())))
    assert k is None and "zero point 9" in why


# ------------------------------------------------------------------------------------ MLPerf Tiny AD
@pytest.fixture(scope="module")
def ad01():
    if not MODELS.is_dir():
        pytest.skip(f"{MODELS} is absent")
    from convertkit.api import load
    return load(AD01), AD01.read_bytes()


def test_anomaly_detection_bit_exact_with_ir_and_tflite_micro(ad01, tmp_path):
    from tests.test_quant_tflite_util import run_tflm
    g, buf = ad01
    assert {n.op for n in g.topo_order()} == {"Gemm"}
    feeds = int8_feeds(g, 8, seed=7)
    refs = check_bundle(g, tmp_path / "ad", feeds, compilers())
    tflm = [run_tflm(buf, f) for f in feeds]
    assert all(t is not None for t in tflm), "tflite_micro is not installed"
    for r, t in zip(refs, tflm):
        np.testing.assert_array_equal(r[0], t[0])


# ------------------------------------------------------------------------------ DSP path (Cortex-M4)
def _mcu():
    import sys
    sys.path.insert(0, str(ROOT))
    from tools.mcu import mcu
    return mcu


def _records_main(folder: Path, feeds: list[list[np.ndarray]], graph: Graph) -> Path:
    """A main.c with the input records compiled in: runs each record, prints every output value."""
    ins = [int(np.prod(graph.tensor(t).shape)) for t in graph.inputs]
    outs = [int(np.prod(graph.tensor(t).shape)) for t in graph.outputs]
    lines = ["#include <stdio.h>", "#include <stdint.h>", '#include "model.h"']
    for j, n in enumerate(ins):
        data = ", ".join(str(int(v)) for f in feeds for v in f[j].reshape(-1))
        lines.append(f"static const int8_t x{j}[{len(feeds)}][{n}] = {{ {data} }};")
    lines += [f"static int8_t y{j}[{n}];" for j, n in enumerate(outs)]
    args = ", ".join([f"x{j}[r]" for j in range(len(ins))] + [f"y{j}" for j in range(len(outs))])
    lines += ["int main(void)", "{", "    int r, i;", f"    for (r = 0; r < {len(feeds)}; ++r) {{",
              f"        model_invoke({args});"]
    for j, n in enumerate(outs):
        lines += [f"        for (i = 0; i < {n}; ++i) {{", f'            printf("%d ", (int)y{j}[i]);', "        }"]
    lines += ['        printf("\\n");', "    }", "    return 0;", "}", ""]
    path = folder / "records_main.c"
    path.write_text("\n".join(lines))
    return path


def test_dsp_path_on_cortex_m4_and_m0_match_the_host(tmp_path):
    """One bundle holding a regular, a depthwise, a 1-D, a grouped and a transposed conv, a Gemm and a
    MatMul: built for the host, for Cortex-M4 (the SXTB16/SMLAD path) and Cortex-M0 (portable,
    soft-float), the three print the same outputs, which are the IR's."""
    mcu = _mcu()
    if not mcu.have_toolchain():
        pytest.skip("arm-none-eabi-gcc / qemu-system-arm are not installed")
    names = ["3x3_s1_same", "dw_m1", "dw_m1_s2_relu6_no_bias", "dw_m2_s2", "conv1d_s2_dilated",
             "gemm_per_channel", "matmul_batched", "group2", "convT_3x3_s2_outpad", "5x5_dilated"]
    g = Graph("mcu_cases")
    for name in names:
        build_case(name, g=g, prefix=f"{name}_")
    infer_shapes(g)
    folder = tmp_path / "b"
    export(g, folder)
    feeds = int8_feeds(g, 2, seed=55)
    want = []
    for f in feeds:
        r = run(g, dict(zip(g.inputs, f)))
        want += [str(int(v)) for o in g.outputs for v in r[o].reshape(-1)]
    main = _records_main(folder, feeds, g)
    srcs = [main, folder / "model.c", folder / "model_weights.c"]
    host = mcu.build_host(srcs, folder / "host", include_dirs=[folder])
    host_out = subprocess.run([str(host)], capture_output=True, text=True, check=True).stdout
    assert host_out.split() == want
    elf = mcu.build(srcs, folder / "m4.elf", cpu="cortex-m4", include_dirs=[folder])
    # the DSP path is really compiled in: SMLAD in the M4 code
    dis = subprocess.run([shutil.which("arm-none-eabi-objdump") or "arm-none-eabi-objdump", "-d", str(elf)],
                         capture_output=True, text=True, check=True).stdout
    assert "smlad" in dis and "sxtb16" in dis
    res = mcu.run(elf, timeout=120)
    assert res.exit_code == 0 and not res.faulted, res.stderr
    assert res.stdout.split() == want
    # Cortex-M0 (ARMv6-M, soft float): the portable path, integer-only (no float helper linked)
    elf0 = mcu.build(srcs, folder / "m0.elf", cpu="cortex-m0", include_dirs=[folder])
    assert not mcu.float_helper_symbols(elf0), sorted(mcu.float_helper_symbols(elf0))
    dis0 = subprocess.run([shutil.which("arm-none-eabi-objdump") or "arm-none-eabi-objdump", "-d", str(elf0)],
                          capture_output=True, text=True, check=True).stdout
    assert "smlad" not in dis0
    res0 = mcu.run(elf0, timeout=120)
    assert res0.exit_code == 0 and not res0.faulted, res0.stderr
    assert res0.stdout.split() == want
