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
    # _core links libscipy_openblas.so; loading it first (by soname) lets the dynamic linker
    # find it wherever _core lives (an editable build, a wheel).
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

from . import _core  # noqa: E402
from ._core import Tensor  # noqa: E402

_core.get_num_threads()  # a bad DAGRAD_NUM_THREADS raises ValueError here, not in the first run
from ._dtype import float32, float64, int64, bool, dtype  # noqa: E402
from ._creation import (  # noqa: E402
    tensor, as_tensor, zeros, ones, full, empty, zeros_like, ones_like, full_like,
    randn, rand, randn_like, rand_like, arange, linspace, manual_seed,
)
from .autograd import no_grad, enable_grad, set_grad_enabled, is_grad_enabled  # noqa: E402
from ._tensor import (  # noqa: E402
    realize, set_num_threads, get_num_threads, show_config,
    add, sub, mul, div, neg, pow, exp, log, sqrt, tanh, sigmoid, relu, matmul,
    sum, mean, reshape, transpose, permute,
    abs, sign, sin, cos, log1p, expm1, erf, square, rsqrt, clamp, clip, where, maximum, minimum,
    max, min, amax, amin, argmax, argmin, prod, var, std, logsumexp, softmax, log_softmax,
    cat, concat, stack, split, chunk, gather, squeeze, unsqueeze, flatten, broadcast_to,
    eq, ne, lt, le, gt, ge,
)
from . import autograd, profiler, nn, optim, data  # noqa: E402
from .serialization import save, load  # noqa: E402
from .compile import (  # noqa: E402
    compile, set_compile_cache_size_limit, get_compile_cache_size_limit, RecompileWarning,
)

__version__ = "0.1.0"

__all__ = [
    "Tensor", "float32", "float64", "int64", "bool", "dtype",
    "tensor", "as_tensor", "zeros", "ones", "full", "empty", "zeros_like", "ones_like",
    "full_like", "randn", "rand", "randn_like", "rand_like", "arange", "linspace",
    "manual_seed", "realize", "no_grad", "enable_grad", "set_grad_enabled",
    "is_grad_enabled", "set_num_threads", "get_num_threads", "show_config",
    "add", "sub", "mul", "div", "neg", "pow", "exp", "log", "sqrt", "tanh", "sigmoid",
    "relu", "matmul", "sum", "mean", "reshape", "transpose", "permute",
    "abs", "sign", "sin", "cos", "log1p", "expm1", "erf", "square", "rsqrt", "clamp", "clip",
    "where", "maximum", "minimum", "max", "min", "amax", "amin", "argmax", "argmin", "prod",
    "var", "std", "logsumexp", "softmax", "log_softmax", "cat", "concat", "stack", "split",
    "chunk", "gather", "squeeze", "unsqueeze", "flatten", "broadcast_to",
    "eq", "ne", "lt", "le", "gt", "ge",
    "autograd", "profiler", "nn", "optim", "data", "save", "load", "compile",
    "set_compile_cache_size_limit", "get_compile_cache_size_limit", "RecompileWarning",
]
