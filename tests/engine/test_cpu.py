"""Reading the CPU's bfloat16 support from cpuinfo."""

from __future__ import annotations

from pathlib import Path

from medlearn.engine.cpu import native_bf16


def test_native_bf16_reads_the_flags(tmp_path: Path) -> None:
    with_bf16 = tmp_path / "a"
    with_bf16.write_text("processor\t: 0\nflags\t\t: fpu sse avx512f avx512_bf16 amx_tile\n")
    without = tmp_path / "b"
    without.write_text("processor\t: 0\nflags\t\t: fpu sse avx2 avx512f\n")
    no_flags = tmp_path / "c"
    no_flags.write_text("processor\t: 0\n")
    assert native_bf16(with_bf16) is True
    assert native_bf16(without) is False
    assert native_bf16(no_flags) is None
    assert native_bf16(tmp_path / "missing") is None
