#!/usr/bin/env python3
"""PyTorch side of `npm run bench:torchvision`: torchvision exports + one-step training references.

Run with Debian's torch (NOT the pyenv python on PATH), from the repository root:

    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 /usr/bin/python3 bench/torchvision-export.py \
        [--out bench/out/torchvision] [--size 224] [--batch 4] [--models resnet18,resnet50,...]

For each architecture (random init from a fixed seed; nothing is downloaded):
  1. The model is made to look pretrained: BatchNorm gets random affine parameters and running
     statistics averaged over two random batches, and zero-initialised biases become random. (This
     also keeps the exporter from deduplicating equal tensors — a fresh model's all-ones BN weights,
     zero biases — into one initializer plus Identity nodes, which would tie those parameters.)
  2. It is exported to `<out>/<arch>.onnx` from eval mode with
     `training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False`, opset 17, dynamic batch
     axis: this keeps every BatchNormalization node (the default EVAL-mode export folds BN into the
     Convs, leaving graft no BN to train) and keeps state_dict names on the initializers.
  3. For one seeded batch (x ~ N(0,1), labels uniform in [0, 1000)) and two configurations
       full    — every parameter trainable, every BN in training mode (batch statistics);
       partial — only the last stage + classifier trainable (ARCHS below); BN layers in that part use
                 batch statistics, frozen BN layers run in eval mode (graft's default for frozen BN),
     it takes one PyTorch train-mode step: cross-entropy loss, the gradient of every trainable
     parameter, then torch.optim.SGD (lr 0.01, momentum 0.9, weight decay 1e-4) and the resulting
     parameters and BN running statistics.
     The saved reference is computed in float64 (the float32 parameters and batch, upcast; --reference
     float32 saves PyTorch's float32 step instead). The same step in float32, on PyTorch's oneDNN and
     native CPU backends, gives PyTorch's own float32 error against float64: the noise floor of the
     comparison, stored as `torch_f32_floor`.
Dropout (MobileNetV2/V3, EfficientNet classifier) and EfficientNet's stochastic depth are set to
p = 0 so the step is deterministic; the eval-mode export contains no Dropout node either.

Writes `<out>/manifest.json`, `<out>/<arch>.onnx`, `<out>/input.bin` (float32 x, then int64 y) and one
`<out>/<arch>.<config>.bin` per configuration (float32 little-endian tensors; offsets in the manifest).
About 1–2 minutes on one core.
"""
import argparse
import copy
import json
import os
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import torchvision  # noqa: E402
from torch import nn  # noqa: E402
from torchvision.ops import StochasticDepth  # noqa: E402

torch.set_num_threads(1)
HERE = os.path.dirname(os.path.abspath(__file__))

# architecture -> (constructor, parameter-name prefixes of the last stage + classifier)
ARCHS = {
    "resnet18": (torchvision.models.resnet18, ["layer4.", "fc."]),
    "resnet50": (torchvision.models.resnet50, ["layer4.", "fc."]),
    # the 7x7 stage: inverted residual blocks 14-17 and the final 1x1 conv
    "mobilenet_v2": (torchvision.models.mobilenet_v2, [f"features.{i}." for i in range(14, 19)] + ["classifier."]),
    # the 7x7 stage: blocks 9-11 (96 channels) and the final 1x1 conv
    "mobilenet_v3_small": (torchvision.models.mobilenet_v3_small, [f"features.{i}." for i in range(9, 13)] + ["classifier."]),
    # the last MBConv stage (320 channels) and the final 1x1 conv
    "efficientnet_b0": (torchvision.models.efficientnet_b0, ["features.7.", "features.8.", "classifier."]),
}


def bn_modules(m):
    return [mod for mod in m.modules() if isinstance(mod, nn.modules.batchnorm._BatchNorm)]


def disable_randomness(m):
    """Dropout and stochastic depth off (p = 0), so the PyTorch step is deterministic."""
    for mod in m.modules():
        if isinstance(mod, (nn.Dropout, StochasticDepth)):
            mod.p = 0.0


def pretrain_like(m, size, batch):
    """Makes the model look pretrained: random BN affine parameters and biases, BN running statistics = cumulative
    average of two random batches' statistics. Fresh constant tensors (BN weight 1, zero biases) would also be
    merged by the exporter's initializer deduplication: equal tensors become one initializer plus Identity nodes."""
    gen = torch.Generator().manual_seed(123)
    saved = [(bn, bn.momentum) for bn in bn_modules(m)]
    with torch.no_grad():
        for bn, _ in saved:
            bn.weight.uniform_(0.5, 1.5, generator=gen)
            bn.bias.uniform_(-0.2, 0.2, generator=gen)
            bn.reset_running_stats()
            bn.momentum = None
        for p in m.parameters():  # zero-initialised conv/linear biases (SE blocks, classifiers)
            if p.numel() > 1 and bool((p == p.flatten()[0]).all()):
                p.uniform_(-0.1, 0.1, generator=gen)
    m.train()
    with torch.no_grad():
        for _ in range(2):
            m(torch.randn(batch, 3, size, size, generator=gen))
    for bn, mom in saved:
        bn.momentum = mom
        bn.num_batches_tracked.zero_()


def export(m, path, size):
    m.eval()
    torch.onnx.export(
        m,
        torch.zeros(1, 3, size, size),
        path,
        opset_version=17,
        training=torch.onnx.TrainingMode.PRESERVE,  # eval-mode BN nodes, not folded into Conv
        do_constant_folding=False,  # keep state_dict names on the initializers
        input_names=["input"],
        output_names=["logits"],
        dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}},
    )


def reference_step(m0, x, y, prefixes, opt_args, dtype):
    """One PyTorch train-mode step in `dtype`: loss, trainable names, grads, params after, BN stats after, ms."""
    m = copy.deepcopy(m0).to(dtype)
    x = x.to(dtype)
    trainable = []
    for name, p in m.named_parameters():
        t = prefixes is None or any(name.startswith(q) for q in prefixes)
        p.requires_grad_(t)
        if t:
            trainable.append(name)
    m.train()
    trained_bn = set()
    for name, mod in m.named_modules():
        if isinstance(mod, nn.modules.batchnorm._BatchNorm):
            if mod.weight.requires_grad:
                trained_bn.add(name)
            else:
                mod.eval()  # frozen BN: running statistics (graft's default for frozen BN)
    t0 = time.perf_counter()
    loss = F.cross_entropy(m(x), y)
    loss.backward()
    params = dict(m.named_parameters())
    opt = torch.optim.SGD([params[n] for n in trainable], **opt_args)
    opt.step()
    ms = 1000 * (time.perf_counter() - t0)
    stats = {}
    for name, buf in m.named_buffers():
        owner, _, leaf = name.rpartition(".")
        if owner in trained_bn and leaf in ("running_mean", "running_var"):
            stats[name] = buf.detach().clone()
    return {
        "loss": float(loss),
        "trainable": trainable,
        "grad": {n: params[n].grad.detach().clone() for n in trainable},
        "param": {n: params[n].detach().clone() for n in trainable},
        "stat": stats,
        "ms": ms,
    }


ZERO_GRAD = 1e-7  # a gradient with norm <= ZERO_GRAD x the global gradient norm is structurally zero


def worst_rel(a, b, zero=0.0):
    """Worst normwise relative error ||a - b|| / ||b|| over the tensors of dicts a and b, and where. Tensors with
    ||b|| <= zero are skipped (e.g. a BN bias whose shift the next training-mode BN cancels: zero up to rounding)."""
    w, at = 0.0, ""
    for n, t in b.items():
        t = t.double()
        if float(t.norm()) <= zero:
            continue
        r = float((a[n].double() - t).norm() / t.norm().clamp_min(1e-300))
        if r > w:
            w, at = r, n
    return w, at


def f32_floor(r64, runs):
    """PyTorch's own float32 error against its float64 step, worst over its CPU backends (oneDNN and native):
    the noise floor of any float32 implementation on this problem (ReLU kinks within rounding of 0 flip)."""
    g_all = float(sum(float(t.double().norm()) ** 2 for t in r64["grad"].values()) ** 0.5)
    floor = {"loss": 0.0, "grad": 0.0, "grad_at": "", "param": 0.0, "stat": 0.0}
    for r in runs:
        floor["loss"] = max(floor["loss"], abs(r["loss"] - r64["loss"]) / abs(r64["loss"]))
        g, at = worst_rel(r["grad"], r64["grad"], ZERO_GRAD * g_all)
        if g > floor["grad"]:
            floor["grad"], floor["grad_at"] = g, at
        floor["param"] = max(floor["param"], worst_rel(r["param"], r64["param"])[0])
        floor["stat"] = max(floor["stat"], worst_rel(r["stat"], r64["stat"])[0])
    return floor


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(HERE, "out", "torchvision"))
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--models", default=",".join(ARCHS))
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--momentum", type=float, default=0.9)
    ap.add_argument("--wd", type=float, default=1e-4)
    ap.add_argument("--reference", choices=["float64", "float32"], default="float64",
                    help="precision of the saved PyTorch reference (float64: the float32 parameters and batch, upcast)")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    opt_args = {"lr": a.lr, "momentum": a.momentum, "weight_decay": a.wd}

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(a.batch, 3, a.size, a.size, generator=gen)
    y = torch.randint(0, 1000, (a.batch,), generator=gen)
    with open(os.path.join(a.out, "input.bin"), "wb") as f:
        f.write(x.numpy().astype("<f4").tobytes())
        f.write(y.numpy().astype("<i8").tobytes())

    manifest = {
        "generator": "bench/torchvision-export.py",
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "reference": a.reference,
        "size": a.size,
        "batch": a.batch,
        "optimizer": {"name": "sgd", "lr": a.lr, "momentum": a.momentum, "weightDecay": a.wd},
        "input": {"file": "input.bin", "x": [a.batch, 3, a.size, a.size], "y": [a.batch]},
        "models": [],
    }
    for arch in a.models.split(","):
        ctor, prefixes = ARCHS[arch]
        t0 = time.perf_counter()
        torch.manual_seed(0)
        m = ctor(weights=None)
        disable_randomness(m)
        pretrain_like(m, a.size, a.batch)
        export(m, os.path.join(a.out, f"{arch}.onnx"), a.size)
        entry = {"arch": arch, "onnx": f"{arch}.onnx", "configs": []}
        for config, pre in (("full", None), ("partial", prefixes)):
            r64 = reference_step(m, x, y, pre, opt_args, torch.float64)
            r32 = reference_step(m, x, y, pre, opt_args, torch.float32)
            with torch.backends.mkldnn.flags(enabled=False):
                r32n = reference_step(m, x, y, pre, opt_args, torch.float32)
            ref = r64 if a.reference == "float64" else r32
            tensors, offset = [], 0
            with open(os.path.join(a.out, f"{arch}.{config}.bin"), "wb") as f:
                for kind in ("grad", "param", "stat"):
                    for name, t in ref[kind].items():
                        arr = t.numpy().astype("<f4")  # float64 rounded to float32: 6e-8 relative
                        f.write(arr.tobytes())
                        tensors.append({"kind": kind, "name": name, "dims": list(arr.shape), "offset": offset})
                        offset += arr.size
            entry["configs"].append({
                "config": config, "prefixes": pre, "loss": ref["loss"], "trainable": ref["trainable"],
                "file": f"{arch}.{config}.bin", "tensors": tensors, "torch_step_ms": round(r32["ms"], 1),
                "torch_f32_floor": f32_floor(r64, [r32, r32n]),
            })
        manifest["models"].append(entry)
        print(f"{arch:<20} exported + references in {time.perf_counter() - t0:.1f} s", flush=True)
    with open(os.path.join(a.out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    print(f"wrote {a.out}/manifest.json", flush=True)


if __name__ == "__main__":
    main()
