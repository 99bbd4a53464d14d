"""Process configuration for the commands that serve: math threads and the C allocator.

Done at the composition root, before the libraries that read it start (and passed to worker
processes through the environment), never by the layers below, which a user may embed in a
process of their own.
"""

from __future__ import annotations

import ctypes
import os
import sys
from typing import Final

__all__ = ["keep_freed_memory", "pin_math_threads"]

THREAD_VARIABLES: Final = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")

_M_TRIM_THRESHOLD: Final = -1
_M_MMAP_THRESHOLD: Final = -3
MALLOC_SETTINGS: Final = {
    # environment variable glibc reads at start: (mallopt parameter, value in bytes)
    "MALLOC_TRIM_THRESHOLD_": (_M_TRIM_THRESHOLD, 256 << 20),
    "MALLOC_MMAP_THRESHOLD_": (_M_MMAP_THRESHOLD, 32 << 20),  # glibc's largest
}
"""Keep up to 256 MiB of freed memory for reuse; allocate blocks under 32 MiB from it."""


def pin_math_threads() -> None:
    """Give OpenMP and BLAS one thread each, unless the user chose otherwise.

    Done before numpy and onnxruntime load their thread pools (and inherited by worker
    processes): the server's parallelism comes from the event loop, the batcher thread and
    ``intra_op_threads``, not from math libraries each starting a thread per core and
    fighting over the same cores.
    """
    for name in THREAD_VARIABLES:
        os.environ.setdefault(name, "1")


def keep_freed_memory() -> None:
    """Make glibc's malloc keep freed memory for reuse instead of handing it back to the
    kernel, unless the user set these variables (Linux with glibc; nothing elsewhere).

    A server with its prediction log on allocates and frees tens of MB a second: each
    request's tensors live until the log writes them, and the log's columns and files are
    built in blocks of a few MB. By default glibc maps blocks over its mmap threshold
    afresh (128 kB at first, raised only to the size of blocks already freed) and returns
    the free top of a heap beyond twice that, so the next blocks fault fresh, zeroed pages
    in again, on every core. Kept, the pages are reused
    while the peak memory, which the log's buffer bounds, stays the same (the A/B of log on
    and off servers under alternating load is in the commit that added this). Applied to
    this process with ``mallopt`` and to worker processes through glibc's environment
    variables.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the process's C library
    except (OSError, AttributeError):  # no C library to load, or not one with mallopt
        return
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    for name, (parameter, value) in MALLOC_SETTINGS.items():
        if name in os.environ:  # the user's choice: glibc read it when this process started
            continue
        os.environ[name] = str(value)
        mallopt(parameter, value)
