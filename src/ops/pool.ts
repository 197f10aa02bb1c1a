// Filled in by the pool work: defineOp(...) calls with infer + grad.
