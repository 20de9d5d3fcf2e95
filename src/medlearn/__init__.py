"""medlearn: deep learning on medical images and molecules, CPU first.

Importing the package sets OpenMP to a passive wait policy (unless the user chose one) before torch
loads: with 2 threads and another busy process, spin-waiting collapses PyTorch throughput ~10x.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
