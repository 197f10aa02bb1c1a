"""PyTorch CPU peer for `npm run bench:step`: one training step (fwd+bwd+SGD momentum) of
torchvision's ResNet18 at 224x224, batch 16, fully trainable and with only layer4+fc trainable.
Usage: /usr/bin/python3 bench/torch_step.py --threads 1 [--batch 16] [--iters 5]
Prints one JSON line.  Run with OPENBLAS_NUM_THREADS=1 MALLOC_MMAP_THRESHOLD_=33554432
MALLOC_TRIM_THRESHOLD_=1073741824 for a fair peer on this VM (bench/step.ts sets them).
"""
import argparse, json, os, time
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import torch, torchvision
import torch.nn.functional as F

ap = argparse.ArgumentParser()
ap.add_argument("--threads", type=int, default=1)
ap.add_argument("--batch", type=int, default=16)
ap.add_argument("--iters", type=int, default=5)
ap.add_argument("--size", type=int, default=224)
a = ap.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(0)
res = {"threads": a.threads, "batch": a.batch}
for mode in ["full", "layer4"]:
    m = torchvision.models.resnet18(num_classes=1000)
    m.train()
    if mode == "layer4":
        for n, p in m.named_parameters():
            p.requires_grad_(n.startswith("layer4") or n.startswith("fc"))
    params = [p for p in m.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=0.01, momentum=0.9)
    x = torch.randn(a.batch, 3, a.size, a.size)
    y = torch.randint(0, 1000, (a.batch,))
    times = []
    for i in range(a.iters + 1):
        t0 = time.perf_counter()
        loss = F.cross_entropy(m(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i > 0:
            times.append(time.perf_counter() - t0)
    res[mode + "_ms"] = 1000 * sorted(times)[len(times) // 2]
print(json.dumps(res), flush=True)
