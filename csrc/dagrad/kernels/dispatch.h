// @brief dtype switches that bind a C++ type to `T` for the body.
#pragma once

#include <string>

#include "dagrad/common.h"

#define DAGRAD_CASE(enum_name, ctype, ...) \
  case ::dagrad::DType::enum_name: {       \
    using T = ctype;                       \
    __VA_ARGS__;                           \
    break;                                 \
  }

/// float32 and float64.
#define DAGRAD_DISPATCH_FLOAT(dtype, opname, ...)                                                                    \
  switch (dtype) {                                                                                                   \
    DAGRAD_CASE(Float32, float, __VA_ARGS__)                                                                         \
    DAGRAD_CASE(Float64, double, __VA_ARGS__)                                                                        \
    default:                                                                                                         \
      throw ::dagrad::TypeError(std::string(opname) + ": not implemented for dtype " + ::dagrad::dtype_name(dtype)); \
  }

/// float32, float64 and int64.
#define DAGRAD_DISPATCH_NUMERIC(dtype, opname, ...)                                                                  \
  switch (dtype) {                                                                                                   \
    DAGRAD_CASE(Float32, float, __VA_ARGS__)                                                                         \
    DAGRAD_CASE(Float64, double, __VA_ARGS__)                                                                        \
    DAGRAD_CASE(Int64, int64_t, __VA_ARGS__)                                                                         \
    default:                                                                                                         \
      throw ::dagrad::TypeError(std::string(opname) + ": not implemented for dtype " + ::dagrad::dtype_name(dtype)); \
  }

/// Every dtype.
#define DAGRAD_DISPATCH_ALL(dtype, ...)       \
  switch (dtype) {                            \
    DAGRAD_CASE(Float32, float, __VA_ARGS__)  \
    DAGRAD_CASE(Float64, double, __VA_ARGS__) \
    DAGRAD_CASE(Int64, int64_t, __VA_ARGS__)  \
    DAGRAD_CASE(Bool, bool, __VA_ARGS__)      \
  }
