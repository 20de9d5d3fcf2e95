"""Which process of a multi-process (DDP) training this is.

With ``--devices N`` Lightning's DDP launcher re-runs the same command line in N-1 child
processes with ``LOCAL_RANK`` set (1..N-1); multi-node runs set ``NODE_RANK``. Only the primary
process (rank 0 on node 0) may create, clear or finish a run directory; the others join the
training and leave the run's files alone.
"""

from __future__ import annotations

import os


def is_primary_process() -> bool:
    """True unless this process is a DDP worker (``LOCAL_RANK`` or ``NODE_RANK`` set and not 0)."""
    return os.environ.get("LOCAL_RANK", "0") == "0" and os.environ.get("NODE_RANK", "0") == "0"
