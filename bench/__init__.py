"""The benchmark (`make bench`, `make bench-quick`); see bench/README.md."""

import function  # noqa: F401  (first: its one-BLAS-thread default must be set before numpy loads)
