"""Seeding and CPU thread settings."""

from __future__ import annotations

import os
import random

import numpy as np


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (all devices)."""
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    os.environ["PL_GLOBAL_SEED"] = str(seed)


def configure_cpu_threads(threads: int | None = None) -> int:
    """Use ``threads`` intra-op threads in torch and in the BLAS/OpenMP pools numpy and scikit-learn use
    (default: the cores this process may use). Members side by side each get their share: an OpenBLAS
    SVD on 2 threads beside a busy process took 37 s where one thread took 2.6 s."""
    import torch

    if threads is None:
        threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    threads = max(1, threads)
    torch.set_num_threads(threads)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(threads)
    except ImportError:  # threadpoolctl comes with scikit-learn; without it only torch is limited
        pass
    return torch.get_num_threads()
