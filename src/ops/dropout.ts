// Filled in by the dropout work: defineOp(...) calls with infer + grad.
