// @brief Elementwise fusion: chains of elementwise nodes computed in one pass, in cache.
#pragma once

#include <cstdint>

#include "dagrad/graph.h"

namespace dagrad {
namespace fusion {

// Per-node flags of a run (indexed by run_index), see Note [Elementwise fusion].
constexpr uint8_t kCandidate = 1;   // may be a member or the root of a fused group
constexpr uint8_t kAbsorbed = 2;    // computed inside its consumer's group: the run skips it
constexpr uint8_t kHasMembers = 4;  // the root of a group: runs the fused kernel
constexpr int kMaxGroup = 16;       // nodes in one group
constexpr int64_t kMinElements = 1024;  // smaller outputs are not fused (Note [Elementwise fusion])

/// @brief Whether `n` may take part in a fused group (op, dtype, grad, input shapes).
bool candidate(const Node& n);

/// @brief Whether candidate `p`, whose only holder is the edge from candidate `c`, may be
/// computed inside c's group.
inline bool absorbable(const Node& p, const Node& c) {
  return p.dtype == c.dtype && p.shape == c.shape;
}

/// @brief Computes `root` (flagged kHasMembers) and, in registers and a small scratch, every
/// node of its group: the inputs of the run (flags indexed by run_index, nodes of the run
/// carry `mark`) flagged kAbsorbed, recursively. Checks the group's input versions first.
void run_group(Node& root, const uint8_t* flags, uint64_t mark);

}  // namespace fusion
}  // namespace dagrad
