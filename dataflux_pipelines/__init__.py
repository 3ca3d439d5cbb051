"""DataFlux pipelines: pure media functions, store contracts and the Dagster assets that wire them."""

import os as _os
import sys as _sys

from dataflux_pipelines.deferred_imports import defer_unused_package_bodies

__version__ = "0.1.0"

# numpy's OpenBLAS starts a thread per core for every matrix product. DataFlux's products are small (a
# query against 100 hit vectors, a shot's frames against another's crop views) and the pipeline keeps
# every core busy decoding and running models, so those threads mostly wait for each other. Measured on
# 2 cores at load 6: the pixel check of 10 frames against 10 took 105 ms with 2 BLAS threads and 1.5 ms
# with one; a 20 s video's graph contribution 2.5-2.8 s against 0.83 s. So one BLAS thread, unless the
# user sets OPENBLAS_NUM_THREADS. It only works before numpy loads OpenBLAS (child processes inherit it);
# when numpy came first, the loaded library is limited at run time.
if "OPENBLAS_NUM_THREADS" not in _os.environ:
    _os.environ["OPENBLAS_NUM_THREADS"] = "1"
    if "numpy" in _sys.modules:
        from threadpoolctl import threadpool_limits as _threadpool_limits

        _threadpool_limits(limits=1, user_api="blas")

# Before anything here imports lancedb (see `deferred_imports`).
defer_unused_package_bodies()
