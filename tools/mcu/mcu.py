"""Build C for Cortex-M, run it under qemu, count instructions; measure TFLite Micro and host programs.

Test-and-bench infrastructure (``tools/``), not shipped in the convertkit package. Import it with the
repository root on ``sys.path``: ``from tools.mcu import mcu``.

Toolchain (Debian packages): gcc-arm-none-eabi, libnewlib-arm-none-eabi, qemu-system-arm; gcc for the
qemu plugin and host builds; valgrind for the x86-64 instruction counts.

Memory map of a program built here (``mps2.ld``): vector table, code and read-only data in the 4 MB
ZBT SSRAM1 at 0x00000000; ``.data`` and ``.bss`` in the 4 MB SSRAM2/3 at 0x20000000; the heap grows up
from the end of ``.bss``. Note that rdimon's crt0 moves the stack pointer to what qemu's SYS_HEAPINFO
reports: on mps2-an386 that is the top of the 16 MB PSRAM (0x22000000), not the top of SSRAM2/3.
A Cortex-M55 build runs on mps3-an547, where that stack is the top of the 512 KB ITCM at 0 and the
heap (newlib refuses a heap above the stack pointer) follows the code in the ITCM.

Instruction counts include the C runtime (about 2,000 guest instructions for an empty ``main``) and
are exactly reproducible for the same ELF and board.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
STARTUP_C = HERE / "startup.c"
LINKER_SCRIPT = HERE / "mps2.ld"
PLUGIN_SRC = HERE / "insn_count.c"
PLUGIN_HDR = HERE / "qemu_plugin_min.h"

ARM_GCC = "arm-none-eabi-gcc"
ARM_GXX = "arm-none-eabi-g++"
ARM_NM = "arm-none-eabi-nm"
ARM_SIZE = "arm-none-eabi-size"
ARM_READELF = "arm-none-eabi-readelf"
QEMU = "qemu-system-arm"

#: Compiler flags selecting each supported core and its float ABI.
CPU_FLAGS: dict[str, tuple[str, ...]] = {
    "cortex-m4": ("-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"),
    "cortex-m0": ("-mcpu=cortex-m0", "-mthumb", "-mfloat-abi=soft"),
    "cortex-m55": ("-mcpu=cortex-m55", "-mthumb", "-mfloat-abi=hard"),
}

#: Extra link flags per core (see mps2.ld: the M55 heap lives in the mps3-an547 ITCM).
CPU_LDFLAGS: dict[str, tuple[str, ...]] = {
    "cortex-m55": ("-Wl,--defsym=__mcu_heap_after_code=1",),
}

#: The qemu board each core runs on by default. ARMv6-M (M0) code is a subset of ARMv7E-M, so an M0
#: build runs on the M4 board; ``run(..., board="microbit")`` runs it on a real Cortex-M0 model (it
#: faults on any ARMv7-M instruction) but that board has only 256 KB flash and 16 KB RAM.
DEFAULT_BOARD: dict[str, str] = {
    "cortex-m4": "mps2-an386",
    "cortex-m0": "mps2-an386",
    "cortex-m55": "mps3-an547",
}

#: Marker printed by startup.c's fault handler (semihosting SYS_WRITE0) before it stops qemu with
#: status 1; RunResult.faulted looks for it in both of qemu's output streams.
FAULT_MARKER = "*** MCU_FAULT:"


@dataclasses.dataclass
class RunResult:
    stdout: str  # what the program printed (semihosting console)
    stderr: str  # qemu's own messages
    exit_code: int  # main's return value (mod 256); 1 after a fault
    instructions: int | None  # executed guest instructions when run(count=True), else None
    faulted: bool  # the program hit a fault / unexpected exception (startup.c's handler ran)
    seconds: float  # wall time of the qemu run

    @property
    def returncode(self) -> int:
        return self.exit_code


# --------------------------------------------------------------------------------------- helpers


def _which(tool: str) -> str | None:
    return shutil.which(tool)


def have_toolchain() -> bool:
    """True when arm-none-eabi-gcc and qemu-system-arm are on PATH."""
    return _which(ARM_GCC) is not None and _which(QEMU) is not None


def have_valgrind() -> bool:
    return _which("valgrind") is not None


def _run(cmd: Sequence[str], *, what: str, timeout: float | None = None, **kw) -> subprocess.CompletedProcess:
    try:
        proc = subprocess.run(
            list(map(str, cmd)), check=False, capture_output=True, text=True, timeout=timeout, **kw
        )
    except FileNotFoundError as e:
        raise RuntimeError(f"{what}: {cmd[0]} not found on PATH") from e
    if proc.returncode != 0:
        raise RuntimeError(
            f"{what} failed (exit {proc.returncode}):\n$ {' '.join(map(str, cmd))}\n{proc.stderr}{proc.stdout}"
        )
    return proc


def _cache_dir(cache_dir: Path | str | None) -> Path:
    if cache_dir is None:
        uid = os.getuid() if hasattr(os, "getuid") else 0
        cache_dir = Path(tempfile.gettempdir()) / f"convertkit-mcu-cache-{uid}"
    d = Path(cache_dir)
    d.mkdir(parents=True, exist_ok=True)
    return d


# ----------------------------------------------------------------------------------------- build


def _common_flags(include_dirs: Iterable, defines: Iterable, opt: str, extra_cflags: Iterable) -> list[str]:
    flags = [opt, "-ffunction-sections", "-fdata-sections"]
    flags += [f"-I{Path(d)}" for d in include_dirs]
    flags += [d if d.startswith("-D") else f"-D{d}" for d in map(str, defines)]
    flags += [str(f) for f in extra_cflags]
    return flags


def _is_cxx(sources: Sequence[Path]) -> bool:
    return any(Path(s).suffix in (".cc", ".cpp", ".cxx", ".C") for s in sources)


def build(
    sources: Sequence[Path | str],
    out: Path | str,
    *,
    cpu: str = "cortex-m4",
    include_dirs: Iterable[Path | str] = (),
    defines: Iterable[str] = (),
    opt: str = "-O2",
    extra_cflags: Iterable[str] = (),
) -> Path:
    """Compile and link ``sources`` (plus startup.c and mps2.ld, newlib nano + rdimon) into an ELF.

    ``defines`` are ``"NAME"`` or ``"NAME=VALUE"`` (a leading ``-D`` is accepted). Raises RuntimeError
    with the compiler's output when compiling or linking fails.
    """
    if cpu not in CPU_FLAGS:
        raise ValueError(f"unknown cpu {cpu!r}; known: {sorted(CPU_FLAGS)}")
    sources = [Path(s) for s in sources]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    cc = ARM_GXX if _is_cxx(sources) else ARM_GCC
    cmd = [
        cc,
        *CPU_FLAGS[cpu],
        *_common_flags(include_dirs, defines, opt, extra_cflags),
        "--specs=nano.specs",
        "--specs=rdimon.specs",
        f"-T{LINKER_SCRIPT}",
        "-Wl,--gc-sections",
        *CPU_LDFLAGS.get(cpu, ()),
        "-o",
        str(out),
        *map(str, sources),
        str(STARTUP_C),
        "-lm",
    ]
    _run(cmd, what=f"{cc} ({cpu}) build of {out.name}")
    return out


def build_host(
    sources: Sequence[Path | str],
    out: Path | str,
    *,
    include_dirs: Iterable[Path | str] = (),
    defines: Iterable[str] = (),
    opt: str = "-O2",
    extra_cflags: Iterable[str] = (),
    cc: str = "gcc",
) -> Path:
    """Build the same sources for the host (x86-64) with ``cc``; returns the executable."""
    sources = [Path(s) for s in sources]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [
        cc,
        *_common_flags(include_dirs, defines, opt, extra_cflags),
        "-o",
        str(out),
        *map(str, sources),
        "-lm",
    ]
    _run(cmd, what=f"{cc} host build of {out.name}")
    return out


# ------------------------------------------------------------------------------------------ qemu


def plugin_path(cache_dir: Path | str | None = None) -> Path:
    """Build (once, cached by source hash) and return the instruction-counting qemu plugin."""
    h = hashlib.sha256(PLUGIN_SRC.read_bytes() + PLUGIN_HDR.read_bytes()).hexdigest()[:12]
    d = _cache_dir(cache_dir)
    lib = d / f"libinsn_count-{h}.so"
    if lib.exists():
        return lib
    tmp = d / f".libinsn_count-{h}-{os.getpid()}.so"
    _run(
        ["gcc", "-shared", "-fPIC", "-O2", f"-I{HERE}", "-o", str(tmp), str(PLUGIN_SRC)],
        what="qemu plugin build",
    )
    os.replace(tmp, lib)  # atomic: concurrent builders race harmlessly
    return lib


def cpu_arch(elf: Path | str) -> str:
    """The ELF's ARM Tag_CPU_arch attribute, e.g. 'v6S-M' (M0), 'v7E-M' (M4), 'v8.1-M.mainline'."""
    out = _run([ARM_READELF, "-A", str(elf)], what="readelf").stdout
    m = re.search(r"Tag_CPU_arch:\s*(\S+)", out)
    return m.group(1) if m else ""


def _board_for(elf: Path) -> str:
    return "mps3-an547" if cpu_arch(elf).startswith("v8.1-M") else "mps2-an386"


def run(
    elf: Path | str,
    *,
    timeout: float = 120,
    count: bool = False,
    board: str | None = None,
    cache_dir: Path | str | None = None,
) -> RunResult:
    """Run an ELF built by :func:`build` under qemu with semihosting.

    ``board`` defaults to mps2-an386 (mps3-an547 for an ARMv8.1-M / Cortex-M55 ELF). With
    ``count=True`` the executed guest instructions are counted by the insn_count plugin (built
    lazily into ``cache_dir``, default a per-user folder in the temp dir). A program that does not
    finish within ``timeout`` seconds raises TimeoutError.
    """
    elf = Path(elf)
    if not elf.exists():
        raise FileNotFoundError(elf)
    board = board or _board_for(elf)
    # Semihosting console (SYS_WRITE0, and the program's stdout on mps2) on a stdio chardev: qemu's
    # stdout. Keep these flags fixed: the instruction count depends (slightly) on them.
    cmd = [
        QEMU,
        "-M",
        board,
        "-display",
        "none",
        "-monitor",
        "none",
        "-serial",
        "none",
        "-chardev",
        "stdio,id=semihost,signal=off",
        "-semihosting-config",
        "enable=on,target=native,chardev=semihost",
        "-kernel",
        str(elf),
    ]
    count_file = None
    if count:
        lib = plugin_path(cache_dir)
        fd, name = tempfile.mkstemp(prefix="insn_count_", suffix=".txt", dir=_cache_dir(cache_dir))
        os.close(fd)
        count_file = Path(name)
        if "," in str(count_file):
            raise RuntimeError(f"plugin output path may not contain a comma: {count_file}")
        cmd += ["-plugin", f"{lib},out={count_file}"]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            cmd, check=False, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired as e:
        if count_file:
            count_file.unlink(missing_ok=True)
        raise TimeoutError(
            f"qemu ({board}) did not finish {elf.name} within {timeout} s (hung program?)"
        ) from e
    seconds = time.perf_counter() - t0
    stdout = proc.stdout.decode("utf-8", "replace")
    stderr = proc.stderr.decode("utf-8", "replace")
    count_text = ""
    if count_file is not None:
        count_text = count_file.read_text()
        count_file.unlink(missing_ok=True)
    if "qemu-system-arm:" in stderr and not stdout and proc.returncode == 1:
        raise RuntimeError(f"qemu failed to start {elf.name} on {board}:\n{stderr}")
    instructions = None
    if count_file is not None:
        m = re.search(r"insns:\s*(\d+)", count_text)
        if not m:
            raise RuntimeError(f"qemu plugin wrote no instruction count for {elf.name}:\n{stderr}")
        instructions = int(m.group(1))
    if board.startswith("mps3-") and not stdout:
        # qemu 7.2 on the mps3 boards sends the program's semihosting stdout to its own stderr.
        stdout, stderr = stderr, ""
    return RunResult(
        stdout=stdout,
        stderr=stderr,
        exit_code=proc.returncode,
        instructions=instructions,
        faulted=FAULT_MARKER in stdout or FAULT_MARKER in stderr,
        seconds=seconds,
    )


# --------------------------------------------------------------------------------- ELF inspection


def linked_symbols(elf: Path | str, *, nm: str = ARM_NM) -> set[str]:
    """Every symbol name in the linked ELF (defined or not), from ``nm``."""
    out = _run([nm, str(elf)], what="nm").stdout
    names = set()
    for line in out.splitlines():
        parts = line.split()
        if parts:
            names.add(parts[-1])
    return names


_FLOAT_HELPER_RE = re.compile(
    r"^(?:__aeabi_(?:[fd](?:add|sub|rsub|mul|div|neg|cmp\w*|2\w+)|c[fd]\w+|[iu]2[fd]|u?l2[fd])"
    r"|__(?:add|sub|mul|div|neg)[sd]f3|__(?:eq|ne|lt|le|gt|ge|unord|cmp)[sd]f2"
    r"|__(?:float|fix|fixuns|extend|trunc)\w*[sd]f\w*)$"
)


def float_helper_symbols(elf: Path | str, *, nm: str = ARM_NM) -> set[str]:
    """The software floating-point helpers (``__aeabi_fdiv``, ``__aeabi_d2iz``, ``__addsf3`` ...)
    linked into the ELF: empty for integer-only code built with ``-mfloat-abi=soft``."""
    return {s for s in linked_symbols(elf, nm=nm) if _FLOAT_HELPER_RE.match(s)}


def size(elf: Path | str, *, size_tool: str = ARM_SIZE) -> dict[str, int]:
    """``{"text", "data", "bss"}`` bytes, from ``size`` (Berkeley format).

    text = code + read-only data (+ vector table); data = initialised RAM; bss = zeroed RAM.
    """
    out = _run([size_tool, "-B", str(elf)], what="size").stdout.splitlines()
    text, data, bss = (int(x) for x in out[1].split()[:3])
    return {"text": text, "data": data, "bss": bss}


def symbols_size(elf: Path | str, prefix: str = "", *, nm: str = ARM_NM) -> dict[str, int]:
    """``{name: size in bytes}`` of the ELF's sized symbols whose name starts with ``prefix``."""
    out = _run([nm, "-S", "--size-sort", str(elf)], what="nm -S").stdout
    sizes: dict[str, int] = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[3].startswith(prefix):
            sizes[parts[3]] = sizes.get(parts[3], 0) + int(parts[1], 16)
    return sizes


# --------------------------------------------------------------------------- host instruction counts


def _callgrind_total(out_file: Path) -> int:
    text = out_file.read_text(errors="replace")
    m = re.search(r"^totals:\s+(\d+)", text, re.MULTILINE) or re.search(
        r"^summary:\s+(\d+)", text, re.MULTILINE
    )
    if not m:
        raise RuntimeError(f"no totals/summary line in callgrind output {out_file}")
    return int(m.group(1))


def _callgrind(
    cmd: Sequence[str],
    *,
    toggle: str | None,
    stdin: bytes | None,
    timeout: float,
    check: bool,
    env: dict | None = None,
) -> int:
    if not have_valgrind():
        raise RuntimeError("valgrind not found on PATH")
    with tempfile.TemporaryDirectory(prefix="callgrind_") as td:
        out_file = Path(td) / "callgrind.out"
        vg = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out_file}"]
        if toggle:
            vg += ["--collect-atstart=no", f"--toggle-collect={toggle}"]
        proc = subprocess.run(
            [*vg, *map(str, cmd)],
            check=False,
            input=stdin if stdin is not None else b"",
            capture_output=True,
            timeout=timeout,
            env=env,
        )
        if check and proc.returncode != 0:
            raise RuntimeError(
                f"callgrind run failed (exit {proc.returncode}): {' '.join(map(str, cmd))}\n"
                f"{proc.stderr.decode('utf-8', 'replace')[-4000:]}"
            )
        total = _callgrind_total(out_file)
    if toggle and total == 0:
        raise RuntimeError(
            f"callgrind collected nothing inside functions matching {toggle!r}: no such function was "
            "called (inlined or static? mark it noinline and non-static)"
        )
    return total


def host_instructions(
    exe: Path | str,
    args: Sequence[str] = (),
    stdin: bytes | str | Path | None = None,
    toggle: str | None = None,
    *,
    timeout: float = 600,
    check: bool = True,
) -> int:
    """x86-64 instructions (callgrind Ir) executed by a host program.

    With ``toggle`` (a callgrind pattern such as ``'model_invoke*'``) only instructions inside
    calls of matching functions are counted. ``stdin`` may be bytes, text or a file path.
    """
    if isinstance(stdin, Path):
        stdin = stdin.read_bytes()
    elif isinstance(stdin, str):
        stdin = stdin.encode()
    return _callgrind(
        [str(Path(exe).resolve()), *args], toggle=toggle, stdin=stdin, timeout=timeout, check=check
    )


# ------------------------------------------------------------------------------------ TFLite Micro

_ARENA_SCRIPT = r"""
import sys
from tflite_micro import runtime
path = sys.argv[1]
cache = {}
def ok(n):
    if n not in cache:
        try:
            runtime.Interpreter.from_file(path, arena_size=n)
            cache[n] = True
        except RuntimeError:
            cache[n] = False
    return cache[n]
hi = 1024
while not ok(hi):
    hi *= 2
    if hi > (1 << 30):
        sys.exit("no arena up to 1 GiB works")
lo = hi // 2 if hi > 1024 else 0   # ok(lo) is False (or lo == 0)
while hi - lo > 1:
    mid = (lo + hi) // 2
    if ok(mid):
        hi = mid
    else:
        lo = mid
print("ARENA", hi)
"""

_INVOKE_SCRIPT = r"""
import sys
import numpy as np
from tflite_micro import runtime
path, arena, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
interp = runtime.Interpreter.from_file(path, arena_size=arena if arena > 0 else None)
for i in range(n):
    interp.set_input(np.load(sys.argv[4 + i]), i)
interp.invoke()
print("OUT", interp.get_output(0).ravel()[:4].tolist())
"""


def tflm_arena_bytes(model_path: Path | str, *, python: str | None = None, timeout: float = 600) -> int:
    """Smallest ``arena_size`` with which TFLite Micro allocates the model's tensors (bisection).

    Runs in a subprocess with ``python`` (default: this interpreter), which needs ``tflite_micro``.
    """
    proc = _run(
        [python or sys.executable, "-c", _ARENA_SCRIPT, str(Path(model_path).resolve())],
        what=f"TFLM arena bisection for {Path(model_path).name}",
        timeout=timeout,
    )
    m = re.search(r"^ARENA (\d+)", proc.stdout, re.MULTILINE)
    if not m:
        raise RuntimeError(f"TFLM arena bisection printed no result:\n{proc.stdout}\n{proc.stderr}")
    return int(m.group(1))


def tflm_instructions(
    model_path: Path | str,
    inputs,
    *,
    python: str | None = None,
    arena_size: int | None = None,
    timeout: float = 1800,
) -> int:
    """x86-64 instructions of ONE TFLite Micro inference (reference kernels), measured with callgrind
    collecting only inside ``*MicroInterpreter::Invoke*``.

    ``inputs`` is one numpy array or a sequence of them (input 0, 1, ...), with the model's input
    dtypes and shapes. ``arena_size`` defaults to TFLM's own default.
    """
    import numpy as np

    if isinstance(inputs, np.ndarray):
        inputs = [inputs]
    with tempfile.TemporaryDirectory(prefix="tflm_insn_") as td:
        files = []
        for i, x in enumerate(inputs):
            f = Path(td) / f"in{i}.npy"
            np.save(f, np.asarray(x))
            files.append(str(f))
        script = Path(td) / "invoke.py"
        script.write_text(_INVOKE_SCRIPT)
        cmd = [
            python or sys.executable,
            str(script),
            str(Path(model_path).resolve()),
            str(arena_size or 0),
            str(len(files)),
            *files,
        ]
        return _callgrind(cmd, toggle="*MicroInterpreter::Invoke*", stdin=None, timeout=timeout, check=True)
