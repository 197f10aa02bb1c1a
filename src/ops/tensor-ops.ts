// Filled in by the tensor-ops work: defineOp(...) calls with infer + grad.
