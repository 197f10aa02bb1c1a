"""PyTorch side of `npm run bench:adapt-torch` (not run by npm test).

For each adaptation method, starting from fixed SmallCNN weights (+ the method's discriminator), a fixed source
batch (x, y), a fixed target batch and (FixMatch) a fixed strong-augmented target view, this takes ONE SGD step
(lr 0.1, momentum 0.9, weight decay 5e-4 — the reference protocol of shared/ref/exp_da_shift.py) in PyTorch,
following the Transfer-Learning-Library (TLlib) formulations, and writes the loss, every gradient, the updated
parameters and BN running statistics. bench/adapt-vs-torch.ts runs the same step through graft's
compileAdaptStep and compares.

The reference is computed in float64 (inputs are the float32 values graft gets); the same step in float32 is
recorded as PyTorch's own float32 error ("floor").

The formulations (TLlib, read from github:thuml/Transfer-Learning-Library; restated here, not copied):
  joint batch   f = features(cat[x_s, x_t(, x_t_strong)]), logits = head(f): BN sees all rows (TLlib's examples).
  DANN          d = D(GRL_λ(f)); 0.5·(BCE(d_s, 1) + BCE(d_t, 0)) (tllib/alignment/dann.py), D = Linear-ReLU-Linear
                (the reference's; TLlib's DomainDiscriminator adds BatchNorm1d). λ = 2/(1+exp(−10p)) − 1 at p = it/total.
  CDAN          h = g ⊗ f with g = softmax(logits).detach() (MultiLinearMap: bmm(g[:, :, None], f[:, None, :]), index
                c·d + j), D(GRL_λ(h)), BCE (tllib/alignment/cdan.py).
  CDAN+E        the same, each row weighted by w = 1 + exp(−H(g)), H = −Σ g·log(g + 1e-5), w scaled to sum to N.
  DAN           Σ_k exp(−‖a−b‖² / (2·α_k·mean(D))), α = 2^−3 … 2^1, mean over the full N×N distance matrix D
                (diagonal included), detached; quadratic estimate with TLlib's index matrix, + 2/(n−1)
                (tllib/alignment/dan.py with linear=False, tllib/modules/kernels.py GaussianKernel).
  CORAL         mean((μs−μt)²) + mean((Cs−Ct)²), unbiased covariances (tllib/alignment/coral.py).
  MCC           tllib/self_training/mcc.py: p = softmax(logits_t/T), entropy weights detached, confusion matrix
                divided by `cc.sum(dim=1)` WITHOUT keepdim (broadcast over columns). Also written: the form of
                shared/ref/exp_da_shift.py (row-normalised, weights not detached), which graft documents.
  self-training mean(CE(y_t, argmax softmax(y_t)) · [max softmax(y_t) > τ]) (ConfidenceBasedSelfTrainingLoss).
  FixMatch      the same with student = strong view's logits, teacher = weak view's logits (detached).

Usage: OPENBLAS_NUM_THREADS=1 /usr/bin/python3 bench/adapt-vs-torch.py [--out bench/out/adapt-torch]
"""
import argparse, json, math, os, sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "ref"))
import common  # noqa: E402  (1 thread, mallopt before torch allocates)
from common import torch, nn, F, SmallCNN  # noqa: E402

N, M = 16, 16          # source rows, target rows per view
LR, MOM, WD = 0.1, 0.9, 5e-4
TOTAL, IT = 10, 3      # GRL schedule: this is optimizer step IT (0-based) of TOTAL -> p = 0.3
T_MCC = 2.5


class GRL(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, coeff):
        ctx.coeff = coeff
        return x.view_as(x)

    @staticmethod
    def backward(ctx, g):
        return -ctx.coeff * g, None


def disc(d_in, h=256):
    return nn.Sequential(nn.Linear(d_in, h), nn.ReLU(), nn.Linear(h, 1))


def entropy_eps(p):  # tllib/modules/entropy.py
    return -(p * torch.log(p + 1e-5)).sum(1)


def grl_lambda(p):
    return 2.0 / (1.0 + math.exp(-10 * p)) - 1.0


def mcc_tllib(logits, T):
    b, c = logits.shape
    p = F.softmax(logits / T, dim=1)
    w = 1 + torch.exp(-entropy_eps(p).detach())
    w = (b * w / w.sum()).unsqueeze(1)
    cc = (p * w).t().mm(p)
    cc = cc / cc.sum(dim=1)  # TLlib: no keepdim -> column j divided by row-sum j
    return (cc.sum() - torch.trace(cc)) / c


def mcc_ref(logits, T):  # shared/ref/exp_da_shift.py
    b, c = logits.shape
    p = F.softmax(logits / T, dim=1)
    w = 1.0 + torch.exp(-entropy_eps(p))
    w = (b * w / w.sum()).unsqueeze(1)
    cc = (p * w).t().mm(p)
    cc = cc / cc.sum(dim=1, keepdim=True)
    return (cc.sum() - torch.trace(cc)) / c


def mkmmd_tllib(zs, zt, alphas):
    f = torch.cat([zs, zt])
    n = zs.shape[0]
    d2 = ((f.unsqueeze(0) - f.unsqueeze(1)) ** 2).sum(2)
    k = sum(torch.exp(-d2 / (2 * a * d2.detach().mean())) for a in alphas)
    idx = torch.zeros(2 * n, 2 * n, dtype=f.dtype)
    for i in range(n):
        for j in range(n):
            if i != j:
                idx[i, j] = idx[i + n, j + n] = 1.0 / (n * (n - 1))
            idx[i, j + n] = idx[i + n, j] = -1.0 / (n * n)
    return (k * idx).sum() + 2.0 / (n - 1)


def coral(fs, ft):
    ms, mt = fs.mean(0, keepdim=True), ft.mean(0, keepdim=True)
    cs = (fs - ms).t().mm(fs - ms) / (len(fs) - 1)
    ct = (ft - mt).t().mm(ft - mt) / (len(ft) - 1)
    return (ms - mt).pow(2).mean() + (cs - ct).pow(2).mean()


def self_training(student, teacher, tau):
    conf, labels = F.softmax(teacher.detach(), dim=1).max(dim=1)
    mask = (conf > tau).to(student.dtype)
    return (F.cross_entropy(student, labels, reduction="none") * mask).mean()


# Trade-off weight of the adaptation term per method (TLlib's --trade-off; graft's MethodSpec.weight), chosen so the
# term's gradient is a sizeable share of the step's (at weight 1 CDAN's and MCC's are ~1 %, which float32 noise of
# the cross-entropy gradient could hide).
WEIGHTS = {"coral": 10.0, "dann": 10.0, "cdan": 30.0, "cdan+e": 30.0, "mcc": 30.0}

# method -> (target views, discriminator input, formulation label)
CASES = [
    ("source-only", 0, None, "cross-entropy"),
    ("coral", 1, None, "TLlib"),
    ("dan", 1, None, "TLlib (quadratic)"),
    ("dann", 1, "f", "TLlib"),
    ("cdan", 1, "fg", "TLlib"),
    ("cdan+e", 1, "fg", "TLlib"),
    ("mcc", 1, None, "shared/ref"),
    ("mcc", 1, None, "TLlib"),  # expected to differ: see EXPECTED
    ("self-training", 1, None, "TLlib"),
    ("fixmatch", 2, None, "TLlib"),
]


# Formulations graft deliberately does not follow; the check must find the difference (or it is not checking).
EXPECTED = {
    ("mcc", "TLlib"): "TLlib detaches the entropy weights (entropy(p).detach()); graft follows shared/ref/exp_da_shift.py, "
                      "which differentiates them. The loss values agree (TLlib's cc / cc.sum(dim=1) without keepdim "
                      "changes nothing: cc = (p*w)^T p is symmetric), the gradients do not.",
}


def step(case, w0, d0, x, y, tau, dtype):
    """One SGD step; returns (loss, adapt loss, grads, params after, BN stats after), all float64 numpy."""
    method, views, dkind, form = case
    model = SmallCNN().to(dtype)
    model.load_state_dict({k: v.to(dtype) for k, v in w0.items()})
    params = list(model.named_parameters())
    D = None
    if dkind:
        D = disc(128 * (10 if dkind == "fg" else 1)).to(dtype)
        D.load_state_dict({k: v.to(dtype) for k, v in d0.items()})
        params += [("disc." + k, v) for k, v in D.named_parameters()]
    opt = torch.optim.SGD([p for _, p in params], lr=LR, momentum=MOM, weight_decay=WD)
    model.train()
    xb = x.to(dtype)
    f = model.features(xb)
    logits = model.head(f)
    cls = F.cross_entropy(logits[:N], y)
    lam = grl_lambda(IT / TOTAL)
    if method == "source-only":
        aux = torch.zeros((), dtype=dtype)
    elif method == "coral":
        aux = coral(f[:N], f[N:])
    elif method == "dan":
        aux = mkmmd_tllib(f[:N], f[N:], [2.0 ** k for k in range(-3, 2)])
    elif method == "dann":
        d = D(GRL.apply(f, lam)).squeeze(1)
        aux = 0.5 * (F.binary_cross_entropy_with_logits(d[:N], torch.ones(N, dtype=dtype)) +
                     F.binary_cross_entropy_with_logits(d[N:], torch.zeros(M, dtype=dtype)))
    elif method in ("cdan", "cdan+e"):
        g = F.softmax(logits, dim=1).detach()
        h = torch.bmm(g.unsqueeze(2), f.unsqueeze(1)).view(f.shape[0], -1)
        d = torch.sigmoid(D(GRL.apply(h, lam)))
        lab = torch.cat([torch.ones(N, 1), torch.zeros(M, 1)]).to(dtype)
        if method == "cdan+e":
            wt = 1.0 + torch.exp(-entropy_eps(g))
            wt = wt / wt.sum() * f.shape[0]
            aux = F.binary_cross_entropy(d, lab, wt.view_as(d))
        else:
            aux = F.binary_cross_entropy(d, lab)
    elif method == "mcc":
        aux = (mcc_tllib if form == "TLlib" else mcc_ref)(logits[N:], T_MCC)
    elif method == "self-training":
        aux = self_training(logits[N:], logits[N:], tau)
    elif method == "fixmatch":
        aux = self_training(logits[N + M:], logits[N:N + M], tau)
    aux = WEIGHTS.get(method, 1.0) * aux
    loss = cls + aux
    opt.zero_grad()
    # the adaptation term's own gradient: the error of graft's total gradient is also measured against it, since
    # the source cross-entropy would otherwise hide a wrong adaptation gradient
    ag = torch.autograd.grad(aux, [p for _, p in params], retain_graph=True, allow_unused=True) if aux.requires_grad \
        else [None] * len(params)
    agrads = {k: (g if g is not None else torch.zeros_like(p)).detach().double().numpy().copy() for (k, p), g in zip(params, ag)}
    loss.backward()
    grads = {k: p.grad.detach().double().numpy().copy() for k, p in params}
    opt.step()
    after = {k: p.detach().double().numpy().copy() for k, p in params}
    stats = {k: v.detach().double().numpy().copy() for k, v in model.state_dict().items() if "running_" in k}
    return float(loss), float(aux), grads, after, stats, agrads


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "out", "adapt-torch"))
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    torch.manual_seed(a.seed)
    w0 = {k: v.clone() for k, v in SmallCNN().state_dict().items() if "num_batches" not in k}
    # a head 6x PyTorch's init scale: confident, varied predictions, so entropy weights, pseudo-label masks and the
    # MCC confusion matrix are far from their uniform-prediction values (where formulations coincide)
    w0["head.weight"] *= 6
    w0["head.bias"] *= 6
    # Source: uniform noise; target: a contrast/brightness shift of fresh noise; strong view: target + noise.
    xs = torch.rand(N, 1, 28, 28)
    ys = torch.randint(0, 10, (N,))
    xt = torch.rand(M, 1, 28, 28) * 0.5 + 0.3
    xts = (xt + 0.2 * torch.randn(M, 1, 28, 28)).clamp(0, 1)
    d_f = {k: v.clone() for k, v in disc(128).state_dict().items()}
    d_fg = {k: v.clone() for k, v in disc(1280).state_dict().items()}

    blobs = []   # float32 inputs graft reads
    refs = []    # float64 results

    def put(lst, arr, dtype):
        off = sum(b.size for b in lst)
        lst.append(arr.astype(dtype).ravel())
        return off

    inputs = {}
    for k, v in w0.items():
        inputs["model." + k] = {"dims": list(v.shape), "offset": put(blobs, v.numpy(), "float32")}
    for k, v in d_f.items():
        inputs["disc_f." + k] = {"dims": list(v.shape), "offset": put(blobs, v.numpy(), "float32")}
    for k, v in d_fg.items():
        inputs["disc_fg." + k] = {"dims": list(v.shape), "offset": put(blobs, v.numpy(), "float32")}
    for k, v in (("xs", xs), ("xt", xt), ("xts", xts)):
        inputs[k] = {"dims": list(v.shape), "offset": put(blobs, v.numpy(), "float32")}

    cases = []
    for case in CASES:
        method, views, dkind, form = case
        x = torch.cat([xs] + [xt, xts][:views])
        tau = None
        if method in ("self-training", "fixmatch"):
            # a threshold between two teacher confidences near the median, far from both (so float32 cannot flip it)
            m = SmallCNN().double()
            m.load_state_dict({k: v.double() for k, v in w0.items()})
            m.train()
            with torch.no_grad():
                conf = F.softmax(m(x.double())[N:N + M], dim=1).max(1)[0].sort()[0].numpy()
            gaps = [(conf[i + 1] - conf[i], i) for i in range(M // 4, 3 * M // 4)]
            gap, i = max(gaps)
            tau = float((conf[i] + conf[i + 1]) / 2)
        d0 = d_f if dkind == "f" else d_fg if dkind == "fg" else None
        loss, aux, grads, after, stats, agrads = step(case, w0, d0, x, ys, tau, torch.float64)
        loss32, aux32, grads32, after32, stats32, _ = step(case, w0, d0, x, ys, tau, torch.float32)

        def rel(a, b):
            return float(((a - b) ** 2).sum() ** 0.5 / max((b ** 2).sum() ** 0.5, 1e-300))

        tensors = []
        for kind, dct in (("grad", grads), ("agrad", agrads), ("param", after), ("stat", stats)):
            for k, v in dct.items():
                tensors.append({"kind": kind, "name": k, "dims": list(v.shape), "offset": put(refs, v, "float64")})
        gnorm = sum((g ** 2).sum() for g in grads.values()) ** 0.5
        floor = {  # structurally zero gradients (a bias before a training-mode BN) are left out, as graft's side does
            "loss": abs(loss32 - loss) / abs(loss),
            "grad": max(rel(grads32[k], grads[k]) for k in grads if (grads[k] ** 2).sum() ** 0.5 > 1e-7 * gnorm),
            "param": max(rel(after32[k], after[k]) for k in after),
        }
        cases.append({"method": method, "formulation": form, "views": views, "disc": dkind, "threshold": tau, "expected_difference": EXPECTED.get((method, form)), "weight": WEIGHTS.get(method, 1.0),
                      "lambda": grl_lambda(IT / TOTAL) if dkind else None, "loss": loss, "adapt_loss": aux,
                      "tensors": tensors, "torch_f32_floor": floor})
        print("%-14s %-18s loss %.6f adapt %.6f  torch f32 vs f64: loss %.1e grad %.1e param %.1e" %
              (method, form, loss, aux, floor["loss"], floor["grad"], floor["param"]), flush=True)

    import numpy as np
    np.concatenate(blobs).astype("float32").tofile(os.path.join(a.out, "inputs.f32"))
    np.concatenate(refs).astype("float64").tofile(os.path.join(a.out, "reference.f64"))
    manifest = {"torch": torch.__version__, "n": N, "m": M, "classes": 10,
                "optimizer": {"lr": LR, "momentum": MOM, "weightDecay": WD}, "total": TOTAL, "it": IT,
                "mcc_temperature": T_MCC, "dan_alphas": [2.0 ** k for k in range(-3, 2)],
                "ys": ys.tolist(), "inputs": inputs, "cases": cases}
    json.dump(manifest, open(os.path.join(a.out, "manifest.json"), "w"), indent=1)
    print("wrote", a.out)


if __name__ == "__main__":
    main()
