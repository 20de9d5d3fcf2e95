"""What this machine's CPU computes natively (to warn before a setting that would run emulated)."""

from __future__ import annotations

from pathlib import Path

# CPU flags (Linux /proc/cpuinfo) of the instructions PyTorch's oneDNN uses for bfloat16 matrix products
BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def native_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool | None:
    """True if the CPU has bfloat16 instructions, False if it has not, None if unknown (no cpuinfo)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return None
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), None)
    if flags is None:
        return None
    return any(flag in flags for flag in BF16_FLAGS)
