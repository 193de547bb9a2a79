// A stand-in for recording one op: a heap node holding its inputs, handed out as a shared_ptr
// (dagrad::Tensor is one NodePtr). The three modules differ only in the Python wrapper.
#pragma once
#include <memory>

struct FakeNode {
  std::shared_ptr<FakeNode> a, b;
  float value = 0;
};
using Handle = std::shared_ptr<FakeNode>;

inline Handle record_mul(const Handle& a, const Handle& b) {
  auto n = std::make_shared<FakeNode>();
  if (a && a->a) n->a = a;  // keep the chain's inputs as the real graph does (one edge)
  n->b = b;
  n->value = a->value * b->value;
  return n;
}
