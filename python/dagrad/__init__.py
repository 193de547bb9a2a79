"""dagrad: a computational-graph framework with automatic differentiation.

Ops record nodes of a lazy graph; values are computed when needed, by a C++ scheduler
that runs independent nodes (of the forward and the backward pass) at the same time.

>>> import dagrad
>>> x = dagrad.tensor(2.0, requires_grad=True)
>>> z = x * 3.0 + 1.0
>>> z.backward()
>>> x.grad.item()
3.0
"""
import os as _os

# Note [Passive OpenMP waits]: idle OpenMP threads must not spin on a core that another
# process may need. libgomp reads this once, when it is loaded by _core below; the
# scheduler's own workers spin only briefly (Note [Idle workers spin briefly, then sleep]).
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _preload_openblas():
    # _core uses libscipy_openblas.so; loading it first, RTLD_GLOBAL, gives _core its symbols
    # wherever _core lives (an editable build, a wheel). See Note [OpenBLAS comes from the
    # scipy-openblas32 wheel] in CMakeLists.txt.
    #
    # Note [BLAS threads] (csrc/dagrad/kernels/gemm.cpp): dagrad calls OpenBLAS on one thread
    # and splits GEMMs itself. Loading the library with OPENBLAS_NUM_THREADS=1 keeps it from
    # starting a pool whose idle threads would spin on cores the scheduler needs. The variable
    # must be set before `import scipy_openblas32`, which already loads the library, and is
    # restored at once, so numpy's own OpenBLAS is unaffected.
    prev = _os.environ.get("OPENBLAS_NUM_THREADS")
    _os.environ["OPENBLAS_NUM_THREADS"] = "1"
    try:
        import ctypes
        import scipy_openblas32
        lib = _os.path.join(scipy_openblas32.get_lib_dir(), scipy_openblas32.get_library(fullname=True))
        if _os.path.exists(lib):
            ctypes.CDLL(lib, mode=ctypes.RTLD_GLOBAL)
    except (ImportError, OSError, IndexError):
        pass
    finally:
        if prev is None:
            del _os.environ["OPENBLAS_NUM_THREADS"]
        else:
            _os.environ["OPENBLAS_NUM_THREADS"] = prev


_preload_openblas()

try:
    from . import _core  # noqa: E402
except ImportError as _e:
    # Note [OpenBLAS comes from the scipy-openblas32 wheel] (CMakeLists.txt): on Linux the
    # module binds OpenBLAS's symbols from the library loaded above.
    if "scipy_" not in str(_e):
        raise
    raise ImportError("dagrad's compiled core needs the OpenBLAS library of the scipy-openblas32 package, "
                      f"which could not be loaded ({_e}): pip install scipy-openblas32") from _e
from ._core import Tensor  # noqa: E402

_core.get_num_threads()  # a bad DAGRAD_NUM_THREADS raises ValueError here, not in the first run
from . import _creation, _dtype, _tensor  # noqa: E402
from ._dtype import *  # noqa: E402, F403
from ._creation import *  # noqa: E402, F403
from ._tensor import *  # noqa: E402, F403
from . import autograd  # noqa: E402
globals().update({_n: getattr(autograd, _n) for _n in autograd.GRAD_MODE})  # dagrad.no_grad, ...
from . import profiler, nn, optim, data  # noqa: E402
from .profiler import profile  # noqa: E402
from .serialization import save, load  # noqa: E402
from .compile import (  # noqa: E402
    compile, set_compile_cache_size_limit, get_compile_cache_size_limit, RecompileWarning,
)
from . import viz  # noqa: E402
from . import distributed  # noqa: E402  (imports mpi4py only at distributed.init())

from ._version import __version__ as __version__  # noqa: E402

# Written once: each module's own list, and the core's binding table for the ops it binds.
__all__ = [
    "Tensor", *_dtype.__all__, *_creation.__all__, *autograd.GRAD_MODE, *_tensor.__all__,
    "autograd", "profiler", "profile", "nn", "optim", "data", "viz", "distributed", "save", "load", "compile",
    "set_compile_cache_size_limit", "get_compile_cache_size_limit", "RecompileWarning",
]
