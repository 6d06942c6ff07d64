"""Which arithmetic VGG19 runs in: what Config.dtype_policy's choices mean, "auto" on this machine.

- "float32": the paper's arithmetic throughout.
- "mixed_bfloat16": the network in bfloat16 throughout (Gram matrices and losses float32). Its
  gradient is inexact: L-BFGS stops improving 1-2 % above float32's loss.
- "mixed_bfloat16_then_float32": each scale starts in bfloat16 and goes on in float32 once a line
  search has spent all its trials, the sign that bfloat16's rounding, not the image, now limits the
  loss (tf_style.step.Synthesis switches, keeping L-BFGS's pairs). L-BFGS only: Adam has no such sign.
- "mixed_float16": the network in float16 throughout (Gram matrices and losses float32), for GPUs,
  whose tensor cores take float16 at bfloat16's speed with 8x finer rounding: from white noise at
  128 px L-BFGS followed float32's loss for 300 evaluations without the stall bfloat16 reaches at
  ~200 (BUILD_NOTES.md, "float16"). The gradient entering the network is scaled into float16's range
  (tf_style.loss_scale). Most CPUs emulate float16: 5-7x float32's time here. Never chosen by "auto".
- "auto" (the default): "mixed_bfloat16_then_float32" where the CPU has bfloat16 instructions
  (x86's AVX512_BF16 or AMX) and the run uses L-BFGS; "float32" elsewhere. Without those
  instructions bfloat16 is emulated, 4x slower per convolution; on an H100 500 steps took 2.8x
  float32's (TF32) time, L-BFGS's line search spending ~6 evaluations a step on bfloat16's
  gradient (BUILD_NOTES.md, "GPU").

Config.winograd convolves the float32 network by Winograd's algorithm: all of a float32 run, the
float32 phase of "mixed_bfloat16_then_float32" (bfloat16 convolves directly: Winograd's transforms
multiply its rounding errors). On a CPU whose float32 convolutions are slow beside its bfloat16 ones
(an Intel Xeon with AMX: 3x) that phase's steps cost most (BUILD_NOTES.md, "Winograd in auto's
float32 phase").

No TensorFlow here: the choice is made from the CPU's flags, so that settings checks stay instant.
"""

from __future__ import annotations

import functools
import os

from tf_style.errors import Field, InputError

#: Config.dtype_policy's choices.
DTYPE_POLICY_CHOICES: tuple[str, ...] = ("auto", "float32", "mixed_bfloat16", "mixed_bfloat16_then_float32", "mixed_float16")
#: The Keras dtype policies a network is built with, in the order a run uses them.
PHASES: dict[str, tuple[str, ...]] = {
    "float32": ("float32",),
    "mixed_bfloat16": ("mixed_bfloat16",),
    "mixed_bfloat16_then_float32": ("mixed_bfloat16", "float32"),
    "mixed_float16": ("mixed_float16",),
}
#: The CPU flags (as Linux's /proc/cpuinfo names them) that make bfloat16 convolutions native in oneDNN.
BFLOAT16_CPU_FLAGS: frozenset[str] = frozenset({"avx512_bf16", "amx_bf16"})
#: An environment variable that, when set, replaces the CPU's flags (space-separated; empty: none):
#: the test suite sets it empty, so that its numbers are the same on every machine.
CPU_FLAGS_ENV = "TF_STYLE_CPU_FLAGS"


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags: $TF_STYLE_CPU_FLAGS when set, else as Linux lists them."""
    if CPU_FLAGS_ENV in os.environ:
        return frozenset(os.environ[CPU_FLAGS_ENV].split())
    return proc_cpu_flags()


@functools.lru_cache(maxsize=None)
def proc_cpu_flags(path: str = "/proc/cpuinfo") -> frozenset[str]:
    """The flags of /proc/cpuinfo's first processor; empty where the file is missing (macOS, Windows)."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def native_bfloat16() -> bool:
    """Whether this CPU computes bfloat16 convolutions in hardware."""
    return bool(cpu_flags() & BFLOAT16_CPU_FLAGS)


def resolve(dtype_policy: str, optimizer: str, gpu: bool = False) -> str:
    """`dtype_policy` with "auto" decided for this machine (see the module docstring); `gpu`: a GPU
    runs the network."""
    if dtype_policy != "auto":
        return dtype_policy
    fast = native_bfloat16() and not gpu and optimizer == "lbfgs"
    return "mixed_bfloat16_then_float32" if fast else "float32"


def exported(dtype_policy: str) -> str:
    """The network policy an export computes in: "auto" is float32 there (the server's hardware is not
    known when exporting, and an answer should not depend on it); "mixed_bfloat16_then_float32" is
    refused: its switch runs on the host, between steps."""
    if dtype_policy == "mixed_bfloat16_then_float32":
        raise InputError(Field("dtype_policy"), "=mixed_bfloat16_then_float32 cannot be exported (the switch to float32 "
                         "runs on the host, between steps; the export's loop is one graph with one network); export "
                         "float32, mixed_bfloat16 or mixed_float16")
    return "float32" if dtype_policy == "auto" else dtype_policy


def phases(dtype_policy: str) -> tuple[str, ...]:
    """The Keras dtype policies a resolved `dtype_policy` runs the network in, in order."""
    if dtype_policy not in PHASES:
        raise ValueError(f"dtype_policy must be resolved to one of {', '.join(PHASES)} first; got {dtype_policy!r}")
    return PHASES[dtype_policy]


__all__ = [
    "BFLOAT16_CPU_FLAGS", "CPU_FLAGS_ENV", "DTYPE_POLICY_CHOICES", "PHASES", "cpu_flags", "exported", "native_bfloat16", "phases",
    "proc_cpu_flags", "resolve",
]
