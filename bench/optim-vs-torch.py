"""Cross-check of graft's optimizers, gradient clipping and LR schedules against real PyTorch.

Not part of `npm test` (which compares against plain-JS re-implementations in test/optim.test.ts); run
it by hand when torch is importable:

    /usr/bin/python3 bench/optim-vs-torch.py [--steps 12]

For each case, random float32 params and per-step gradients are fed to torch.optim.{SGD,Adam,AdamW}
(two param groups: group 1 at lr x 0.1 with its own weight decay), optionally through
torch.nn.utils.clip_grad_norm_, with a torch LR scheduler stepped after every update. The same data go
to bench/optim-vs-torch.ts, which runs graft's emitted update graph in onnxruntime with the matching
graft schedule (0-based step = number of updates already made, PyTorch's convention). The script prints
the worst normwise relative error max|graft - torch| / max|torch| over all params and steps, and exits 1
if any case exceeds --tol (default 1e-5: both sides are float32 with different op orders).
"""
import argparse, json, os, subprocess, sys, tempfile
import torch

ap = argparse.ArgumentParser()
ap.add_argument("--steps", type=int, default=12)
ap.add_argument("--tol", type=float, default=1e-5)
a = ap.parse_args()
N = a.steps
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

SHAPES = [("w0", [3, 4], 0), ("b0", [4], 0), ("w1", [2, 3], 1), ("s1", [], 1),
          # Conv weights (rank 4: the optimizer shapes its scalars to match; small = the Sub step, large = the Gemm step)
          ("k3", [4, 3, 3, 3], 0), ("k1", [64, 32, 1, 1], 1)]
GROUPS = [{"lrScale": 1}, {"lrScale": 0.1, "weightDecay": 0.05}]

CASES = [
    dict(name="sgd nesterov+wd, onecycle, clip 1", optimizer="sgd", options=dict(lr=0.1, momentum=0.9, nesterov=True, weightDecay=1e-3),
         schedule={"kind": "onecycle"}, clip=1.0),
    dict(name="sgd momentum+dampening, step", optimizer="sgd", options=dict(lr=0.1, momentum=0.9, dampening=0.3),
         schedule={"kind": "step", "stepSize": 4, "gamma": 0.5}),
    dict(name="sgd plain+wd, constant", optimizer="sgd", options=dict(lr=0.05, weightDecay=0.01), schedule={"kind": "constant"}),
    dict(name="adam wd+amsgrad, cosine", optimizer="adam", options=dict(lr=0.01, weightDecay=1e-2, amsgrad=True), schedule={"kind": "cosine"}),
    dict(name="adamw, onecycle, clip 0.5", optimizer="adamw", options=dict(lr=0.01), schedule={"kind": "onecycle"}, clip=0.5),
    dict(name="adam betas, inv", optimizer="adam", options=dict(lr=0.02, betas=[0.8, 0.99], eps=1e-6), schedule={"kind": "inv"}),
]


def torch_optimizer(c, groups):
    o = c["options"]
    if c["optimizer"] == "sgd":
        return torch.optim.SGD(groups, lr=o["lr"], momentum=o.get("momentum", 0), dampening=o.get("dampening", 0),
                               nesterov=o.get("nesterov", False), weight_decay=o.get("weightDecay", 0))
    cls = torch.optim.Adam if c["optimizer"] == "adam" else torch.optim.AdamW
    return cls(groups, lr=o["lr"], betas=tuple(o.get("betas", (0.9, 0.999))), eps=o.get("eps", 1e-8),
               weight_decay=o.get("weightDecay", 0 if c["optimizer"] == "adam" else 0.01), amsgrad=o.get("amsgrad", False))


def torch_scheduler(c, opt):
    s = c["schedule"]
    k = s["kind"]
    if k == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[g["lr"] for g in opt.param_groups], total_steps=N, cycle_momentum=False)
    if k == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=N)
    if k == "step":
        return torch.optim.lr_scheduler.StepLR(opt, step_size=s["stepSize"], gamma=s["gamma"])
    if k == "inv":
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda step: (1 + 10 * step / N) ** -0.75)
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)


gen = torch.Generator().manual_seed(0)
payload, expected = [], {}
for c in CASES:
    params = [torch.randn(d, generator=gen) for _, d, _ in SHAPES]
    grads = [[0.5 * torch.randn(d, generator=gen) for _, d, _ in SHAPES] for _ in range(N)]
    tp = [torch.nn.Parameter(p.clone()) for p in params]
    groups = []
    for k, gr in enumerate(GROUPS):
        d = {"params": [tp[i] for i, (_, _, g) in enumerate(SHAPES) if g == k], "lr": c["options"]["lr"] * gr["lrScale"]}
        if "weightDecay" in gr:
            d["weight_decay"] = gr["weightDecay"]
        groups.append(d)
    opt = torch_optimizer(c, groups)
    sched = torch_scheduler(c, opt)
    traj = []
    for t in range(N):
        for p, g in zip(tp, grads[t]):
            p.grad = g.clone()
        if c.get("clip") is not None:
            torch.nn.utils.clip_grad_norm_(tp, c["clip"])
        opt.step()
        sched.step()
        traj.append([p.detach().flatten().tolist() for p in tp])
    expected[c["name"]] = traj
    payload.append({**c, "groups": GROUPS,
                    "params": [{"name": n, "dims": d, "group": g, "init": p.flatten().tolist()} for (n, d, g), p in zip(SHAPES, params)],
                    "grads": [[g.flatten().tolist() for g in step] for step in grads]})

with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
    json.dump(payload, f)
try:
    out = subprocess.run(["node", "--import", "tsx", os.path.join(HERE, "optim-vs-torch.ts"), f.name], cwd=ROOT, check=True, capture_output=True, text=True)
finally:
    os.unlink(f.name)
graft = json.loads(out.stdout)

worst_all = 0.0
for c in CASES:
    worst = 0.0
    for gs, ts in zip(graft[c["name"]], expected[c["name"]]):
        for gp, tp_ in zip(gs, ts):
            diff = max(abs(x - y) for x, y in zip(gp, tp_))
            worst = max(worst, diff / max(max(abs(y) for y in tp_), 1e-30))
    worst_all = max(worst_all, worst)
    print(f"{c['name']:<40} max normwise rel err over {N} steps: {worst:.2e} {'ok' if worst <= a.tol else 'FAIL'}")
print(json.dumps({"bench": "optim-vs-torch", "torch": torch.__version__, "steps": N, "worst": worst_all, "tol": a.tol}))
sys.exit(0 if worst_all <= a.tol else 1)
