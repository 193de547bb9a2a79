// @brief Elementwise fusion: chains of elementwise nodes computed in one pass, in cache.
#pragma once

#include <cstdint>
#include <vector>

#include "dagrad/graph.h"

namespace dagrad {
namespace fusion {

// Per-node flags of a run (indexed by run_index), see Note [Elementwise fusion].
constexpr uint8_t kCandidate = 1;       // may be a member or the root of a fused group
constexpr uint8_t kAbsorbed = 2;        // computed inside its consumer's group: the run skips it
constexpr uint8_t kHasMembers = 4;      // the root of a group: runs the fused kernel
constexpr uint8_t kGemmRoot = 8;        // ... whose member is a product: Note [GEMM epilogue fusion]
constexpr int kMaxGroup = 16;           // nodes in one group
constexpr int64_t kMinElements = 1024;  // smaller outputs are not fused (Note [Elementwise fusion])

/// @brief Whether `n` may take part in a fused group (op, dtype, grad, input shapes).
bool candidate(const Node& n);

/// @brief Whether `p`, the first input of candidate `c` and held by that edge alone, is a product
/// that c may compute in the product's tile epilogue (Note [GEMM epilogue fusion]).
bool gemm_epilogue_member(const Node& p, const Node& c);

/// @brief Whether candidate `p`, whose only holder is the edge from candidate `c`, may be
/// computed inside c's group.
inline bool absorbable(const Node& p, const Node& c) { return p.dtype == c.dtype && p.shape == c.shape; }

/// @brief Elementwise fusion on or off (on by default). Results are the same bits either way;
/// off is for tests and benchmarks that compare the two.
void set_enabled(bool enabled);
bool enabled();

/// @brief A run's fusion decisions: per-node flags and group sizes, indexed by run_index and
/// filled from the first candidate on (empty while none has been seen).
struct Plan {
  bool active = false;  // fusion allowed in this run
  bool any = false;     // some node is absorbed into a group
  int64_t fused = 0;    // how many
  std::vector<uint8_t> flags;
  std::vector<uint8_t> size;
  // Absorptions into a node that takes members from both its inputs, i.e. joins two branches
  // in one group (run indices of the member and of the join): undone when the run goes
  // parallel (split_joins).
  std::vector<std::pair<int32_t, int32_t>> joins;

  /// Called for each node as the run collects it, parents first (n's run_index is set, and
  /// n's inputs of this run carry `mark`): decides which of its inputs are computed inside
  /// its group.
  inline void consider(Node* n, uint64_t mark);
  uint8_t flags_of(int32_t i) const { return any ? flags[static_cast<size_t>(i)] : 0; }
  /// Note [Fusion keeps parallel branches]: called when the run goes to the pool.
  void split_joins(const std::vector<Node*>& order, uint64_t mark);
  void clear() {
    flags.clear();
    size.clear();
    joins.clear();
    active = any = false;
    fused = 0;
  }
};

// Inline: the run calls it for every node it collects.
inline void Plan::consider(Node* n, uint64_t mark) {
  const size_t i = static_cast<size_t>(n->run_index);
  const bool cand = candidate(*n);
  if (flags.empty()) {
    if (!cand) return;  // nothing to track until the first candidate
    flags.assign(i, 0);
    size.assign(i, 1);
  }
  uint8_t f = 0, sz = 1;
  if (cand && !n->inputs.empty()) {  // Note [GEMM epilogue fusion]
    const Edge& e = n->inputs[0];
    Node* p = e.node.get();
    if (p->mark == mark && e.node.use_count() == 1 && flags[static_cast<size_t>(p->run_index)] == 0 &&
        gemm_epilogue_member(*p, *n)) {
      flags[static_cast<size_t>(p->run_index)] = kAbsorbed;
      flags.push_back(kCandidate | kHasMembers | kGemmRoot);
      size.push_back(2);
      any = true;
      ++fused;
      return;
    }
  }
  if (cand) {
    f = kCandidate;
    int32_t absorbed[2];  // elementwise ops have at most two inputs
    int num_absorbed = 0;
    for (const Edge& e : n->inputs) {
      Node* p = e.node.get();
      if (p->mark != mark) continue;
      const size_t pi = static_cast<size_t>(p->run_index);
      const uint8_t pf = flags[pi];
      if (!(pf & kCandidate) || (pf & (kAbsorbed | kGemmRoot))) continue;
      if (e.node.use_count() != 1 || !absorbable(*p, *n)) continue;
      if (sz + size[pi] > kMaxGroup) continue;
      flags[pi] = pf | kAbsorbed;
      sz = static_cast<uint8_t>(sz + size[pi]);
      f |= kHasMembers;
      any = true;
      ++fused;
      if (num_absorbed < 2) absorbed[num_absorbed++] = static_cast<int32_t>(pi);
    }
    // Members from two inputs: two branches joined in one group (Note [Fusion keeps parallel
    // branches]).
    if (num_absorbed == 2)
      for (int k = 0; k < 2; ++k) joins.emplace_back(absorbed[k], static_cast<int32_t>(i));
  }
  flags.push_back(f);
  size.push_back(sz);
}

/// @brief The members of root's group other than root, parents first (for the profiler).
void group_members(const Node& root, const uint8_t* flags, uint64_t mark, std::vector<const Node*>& out);

/// @brief Computes `root` (flagged kHasMembers) and, in registers and a small scratch, every
/// node of its group: the inputs of the run (flags indexed by run_index, nodes of the run
/// carry `mark`) flagged kAbsorbed, recursively. Checks the group's input versions first.
void run_group(Node& root, const uint8_t* flags, uint64_t mark);

}  // namespace fusion
}  // namespace dagrad
