// Filled in by the conv work: defineOp(...) calls with infer + grad.
