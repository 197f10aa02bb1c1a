// Filled in by the norm work: defineOp(...) calls with infer + grad.
