"""PyTorch peer of graft's source pretraining (the demo's step 1), self-contained: the reference protocol of
../shared/ref (SmallCNN, SGD momentum 0.9, wd 5e-4, lr 0.01·(1+10p)^-0.75, batch 64, 2 epochs of MNIST), on 1 thread,
with the reference's glibc malloc tuning. Prints one JSON line: {"steps", "seconds", "ms_per_step", "source_test_acc"}.

Usage: /usr/bin/python3 bench/torch_pretrain.py MNIST_DIR [steps] [seed]
"""
import ctypes, json, os, sys, time
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
try:
    _libc = ctypes.CDLL("libc.so.6")
    _libc.mallopt(-3, 32 * 1024 * 1024)  # M_MMAP_THRESHOLD
    _libc.mallopt(-1, 1 << 30)  # M_TRIM_THRESHOLD
    _libc.mallopt(-2, 256 * 1024 * 1024)  # M_TOP_PAD
except Exception:
    pass
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

torch.set_num_threads(1)


def read_idx(path):
    with open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


class SmallCNN(nn.Module):
    def __init__(self, n_cls=10):
        super().__init__()
        self.backbone = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(64 * 49, 128), nn.BatchNorm1d(128), nn.ReLU(inplace=True))
        self.head = nn.Linear(128, n_cls)

    def forward(self, x):
        return self.head(self.backbone(x))


def main():
    d = sys.argv[1]
    xtr = torch.from_numpy(read_idx(os.path.join(d, "train-images-idx3-ubyte")).astype(np.float32) / 255.0).unsqueeze(1)
    ytr = torch.from_numpy(read_idx(os.path.join(d, "train-labels-idx1-ubyte")).astype(np.int64))
    xte = torch.from_numpy(read_idx(os.path.join(d, "t10k-images-idx3-ubyte")).astype(np.float32) / 255.0).unsqueeze(1)
    yte = torch.from_numpy(read_idx(os.path.join(d, "t10k-labels-idx1-ubyte")).astype(np.int64))
    steps = int(sys.argv[2]) if len(sys.argv) > 2 else 2 * (len(xtr) // 64)
    seed = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    torch.manual_seed(seed)
    t0 = time.time()
    model = SmallCNN()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    g = torch.Generator().manual_seed(1000 + seed)
    n, bs = len(xtr), 64
    perm, pos = torch.randperm(n, generator=g), 0
    model.train()
    for it in range(steps):
        opt.param_groups[0]["lr"] = 0.01 / (1 + 10 * it / steps) ** 0.75
        if pos + bs > n:
            perm, pos = torch.randperm(n, generator=g), 0
        idx = perm[pos:pos + bs]
        pos += bs
        loss = F.cross_entropy(model(xtr[idx]), ytr[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    seconds = time.time() - t0
    model.eval()
    with torch.no_grad():
        acc = sum((model(xte[i:i + 500]).argmax(1) == yte[i:i + 500]).sum().item() for i in range(0, len(xte), 500)) / len(xte)
    print(json.dumps({"steps": steps, "seconds": round(seconds, 2), "ms_per_step": round(1000 * seconds / steps, 2), "source_test_acc": round(100 * acc, 2)}))


main()
