// @brief Process setup shared by the C++ benchmark binaries.
#pragma once

#include <cstdlib>
#if defined(__linux__)
#include <unistd.h>
#endif

// OpenBLAS starts its thread pool when the library loads, and idle pool threads spin for a while
// on the cores the benchmark measures. dagrad runs BLAS single-threaded (Note [BLAS threads]); the
// Python package sets OPENBLAS_NUM_THREADS=1 before it loads the library, and a C++ binary has to
// do the same before it starts: re-execute itself once with the variable set.
inline void use_single_threaded_blas(char** argv) {
#if defined(__linux__)
  if (std::getenv("OPENBLAS_NUM_THREADS") == nullptr) {
    setenv("OPENBLAS_NUM_THREADS", "1", 1);
    execv("/proc/self/exe", argv);  // returns only on failure: then go on as we are
  }
#else
  (void)argv;
#endif
}
