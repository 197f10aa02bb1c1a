"""PyTorch peer for bench/head.ts (same protocol as shared/ref/exp_c_mlp_timing.py): MLP 512->256->256->10,
SGD lr 0.01 momentum 0.9, cross-entropy, batch 32 (--batch), 10 epochs on 10,000 random 512-d vectors, on --threads
intra-op threads (default 1). Set OPENBLAS_NUM_THREADS to the same count: Debian torch runs its GEMMs in OpenBLAS.
Usage: OPENBLAS_NUM_THREADS=N /usr/bin/python3 bench/torch_head.py [--runs 3] [--batch 32] [--threads N]"""
import argparse, json, os, statistics, time
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import torch, torch.nn as nn, torch.nn.functional as F
ap = argparse.ArgumentParser(); ap.add_argument("--runs", type=int, default=3); ap.add_argument("--batch", type=int, default=32)
ap.add_argument("--threads", type=int, default=1); a = ap.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(0)
X = torch.randn(10000, 512); Y = torch.randint(0, 10, (10000,))
times = []; cpu = []
for r in range(a.runs):
    torch.manual_seed(r)
    m = nn.Sequential(nn.Linear(512, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10))
    opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)
    t0 = time.time(); c0 = time.process_time()
    for ep in range(10):
        perm = torch.randperm(10000)
        for i in range(0, 10000, a.batch):
            idx = perm[i:i + a.batch]
            loss = F.cross_entropy(m(X[idx]), Y[idx])
            opt.zero_grad(); loss.backward(); opt.step()
    times.append(time.time() - t0); cpu.append(time.process_time() - c0)
print(json.dumps({"times_s": times, "median_s": statistics.median(times), "cpu_s": cpu, "median_cpu_s": statistics.median(cpu)}))
