"""Related-content recommendations: fetch -> extract -> vectorize -> lookup -> log."""

import os

__version__ = "0.1.0"

# One BLAS thread, set before numpy loads. A lookup is one matrix-vector
# product that a single core does in well under a millisecond; OpenBLAS's
# extra threads only spin, and on a busy machine a product waited tens of
# milliseconds for its second thread to be scheduled (measured: 48 ms vs
# 0.08 ms for 10k x 200). Requests are served in parallel by gunicorn
# threads instead. An explicit OPENBLAS_NUM_THREADS still wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
