"""Quantizing tensors with ggml itself, the library llama.cpp is built on, for the types the ``gguf`` package cannot
produce (the K-quants of Q4_K_M, and Q5_0). The ``libggml-python`` package ships ggml prebuilt for Linux, Windows and
macOS; its ``ggml_quantize_chunk`` writes exactly the bytes llama.cpp's own quantizer writes.
"""

from __future__ import annotations

import ctypes
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType as Q

from engine.light.errors import UserError

ROWS_PER_CHUNK = 256


class QuantizerMissing(UserError):
    kind = "quantizer"


def block_size(qtype: Q) -> int:
    """Values per quantization block: a row's length must be a multiple of it (ggml does not check)."""
    from gguf.constants import GGML_QUANT_SIZES

    return GGML_QUANT_SIZES[qtype][0]


def _library_file() -> Path:
    try:
        import libggml
    except ImportError:
        raise QuantizerMissing("the ggml library is not installed, so K-quants (Q4_K_M) cannot be written",
                               hint="install it with 'pip install libggml-python', or export F16 or Q8_0") from None
    root = Path(libggml.__file__).parent
    names = ("libggml-base.so", "ggml-base.dll", "libggml-base.dylib")
    for found in sorted(root.rglob("*ggml-base*")):
        if found.name in names:
            return found
    raise QuantizerMissing(f"the ggml library in {root} has no ggml-base library", hint="reinstall libggml-python")


_LIBRARY = None


def _library():
    global _LIBRARY
    if _LIBRARY is None:
        lib = ctypes.CDLL(str(_library_file()))
        lib.ggml_quantize_chunk.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
                                            ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p]
        lib.ggml_quantize_chunk.restype = ctypes.c_size_t
        lib.ggml_row_size.argtypes = [ctypes.c_int, ctypes.c_int64]
        lib.ggml_row_size.restype = ctypes.c_size_t
        lib.ggml_validate_row_data.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t]
        lib.ggml_validate_row_data.restype = ctypes.c_bool
        lib.ggml_quantize_requires_imatrix.argtypes = [ctypes.c_int]
        lib.ggml_quantize_requires_imatrix.restype = ctypes.c_bool
        _LIBRARY = lib
    return _LIBRARY


def available() -> bool:
    try:
        _library()
        return True
    except (QuantizerMissing, OSError):
        return False


def quantize(values: np.ndarray, qtype: Q, threads: int | None = None) -> np.ndarray:
    """A 2-D float array (rows × values per row) quantized to ``qtype``: the bytes, one row after another."""
    lib = _library()
    rows, per_row = values.shape
    if per_row % block_size(qtype):
        raise ValueError(f"{qtype.name} needs rows of a multiple of {block_size(qtype)} values, not {per_row}")
    if lib.ggml_quantize_requires_imatrix(int(qtype)):
        raise ValueError(f"{qtype.name} needs an importance matrix")
    source = np.ascontiguousarray(values, dtype=np.float32)
    row_bytes = lib.ggml_row_size(int(qtype), per_row)
    out = np.empty(rows * row_bytes, dtype=np.uint8)
    src, dst = source.ctypes.data, out.ctypes.data

    def chunk(first: int) -> None:
        count = min(ROWS_PER_CHUNK, rows - first)
        # ``start`` counts values; ggml places the chunk in ``dst`` itself. The call releases the GIL.
        lib.ggml_quantize_chunk(int(qtype), src, dst, first * per_row, count, per_row, None)

    with ThreadPoolExecutor(max_workers=threads or os.cpu_count() or 1) as pool:
        list(pool.map(chunk, range(0, rows, ROWS_PER_CHUNK)))
    if not lib.ggml_validate_row_data(int(qtype), dst, out.nbytes):
        raise ValueError(f"ggml found the {qtype.name} data it wrote invalid")
    return out.reshape(rows, row_bytes)
