"""PyTorch CPU peer for graft's step benchmarks: one training step (fwd+bwd+SGD momentum) of a torchvision
model (resnet18 or mobilenet_v2) at 224x224, fully trainable and (resnet18) with only layer4+fc trainable.
Usage:
  /usr/bin/python3 bench/torch_step.py --threads 1 [--model resnet18] [--batch 16] [--iters 5]   one JSON line
  /usr/bin/python3 bench/torch_step.py --serve --model mobilenet_v2 --batch 8
      builds the full-step model once, then for each stdin line {"threads": t, "iters": n} runs one warm-up and n
      timed steps at t threads and prints {"threads", "ms": median, "times"} - so a caller can alternate with graft.
Run with OPENBLAS_NUM_THREADS=1 MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=1073741824 for a fair peer
on this VM (bench/step.ts and bench/step-vs-torch.ts set them).
"""
import argparse, json, os, sys, time
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import torch, torchvision
import torch.nn.functional as F

ap = argparse.ArgumentParser()
ap.add_argument("--threads", type=int, default=1)
ap.add_argument("--model", default="resnet18", choices=["resnet18", "mobilenet_v2"])
ap.add_argument("--batch", type=int, default=16)
ap.add_argument("--iters", type=int, default=5)
ap.add_argument("--size", type=int, default=224)
ap.add_argument("--serve", action="store_true")
a = ap.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(0)


def build(mode):
    m = getattr(torchvision.models, a.model)(num_classes=1000)
    m.train()
    if mode == "layer4":
        for n, p in m.named_parameters():
            p.requires_grad_(n.startswith("layer4") or n.startswith("fc"))
    params = [p for p in m.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=0.01, momentum=0.9)
    x = torch.randn(a.batch, 3, a.size, a.size)
    y = torch.randint(0, 1000, (a.batch,))

    def step():
        t0 = time.perf_counter()
        loss = F.cross_entropy(m(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return 1000 * (time.perf_counter() - t0)

    return step


if a.serve:
    step = build("full")
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        torch.set_num_threads(int(cmd["threads"]))
        step()
        times = sorted(step() for _ in range(int(cmd["iters"])))
        print(json.dumps({"threads": cmd["threads"], "ms": times[len(times) // 2], "times": times}), flush=True)
    sys.exit(0)

res = {"threads": a.threads, "batch": a.batch, "model": a.model}
for mode in ["full", "layer4"] if a.model == "resnet18" else ["full"]:
    step = build(mode)
    times = [step() for _ in range(a.iters + 1)][1:]
    res[mode + "_ms"] = sorted(times)[len(times) // 2]
print(json.dumps(res), flush=True)
