"""PyTorch peer of `npm run bench:memory` (bench/memory.ts): the same MobileNetV2 job graft runs, so its peak RSS
(measured by /usr/bin/time -v around this process) is comparable.

--job run: torchvision mobilenet_v2 (no download) with graft's default head (MLP 256-256, ReLU): one epoch of the
head alone on no_grad backbone features, then one epoch of everything, with SGD (momentum 0.9) at --batch over the class-per-folder PNGs in --train (15 % of each
class held out for validation, last partial batch dropped, as graft does), images resized to 224x224; then the
validation and --test folders evaluated at --batch under no_grad, and the model exported with torch.onnx.export.
--job step: two full training steps at --batch on random 224x224 input (the first is the warm-up).
Prints one JSON line: the high-water mark (VmHWM, MB) at the end of each part.
"""
import argparse, json, os, random

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import torch, torchvision
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image


def mem():
    s = open("/proc/self/status").read()
    kb = lambda k: int(s.split(k + ":")[1].split()[0])
    return {"rss": kb("VmRSS") // 1024, "hwm": kb("VmHWM") // 1024}


ap = argparse.ArgumentParser()
ap.add_argument("--job", default="run")
ap.add_argument("--train")
ap.add_argument("--test")
ap.add_argument("--out", default="/tmp")
ap.add_argument("--batch", type=int, default=32)
ap.add_argument("--threads", type=int, default=2)
a = ap.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(0)
random.seed(0)
parts = {"start": mem()}


def model(classes):
    m = torchvision.models.mobilenet_v2(num_classes=1000)
    m.classifier = nn.Sequential(nn.Linear(1280, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, classes))
    return m


def listing(folder):
    classes = sorted(d for d in os.listdir(folder) if os.path.isdir(os.path.join(folder, d)))
    return classes, [[os.path.join(folder, c, f) for f in sorted(os.listdir(os.path.join(folder, c)))] for c in classes]


def load(files):
    xs = [torch.from_numpy(__import__("numpy").asarray(Image.open(f).convert("RGB").resize((224, 224), Image.BILINEAR), dtype="float32") / 255.0).permute(2, 0, 1) for f in files]
    return torch.stack(xs)


def batches(items, bs, drop_last):
    for i in range(0, len(items), bs):
        b = items[i : i + bs]
        if drop_last and len(b) < bs:
            return
        yield load([f for f, _ in b]), torch.tensor([y for _, y in b])


def evaluate(m, items):
    m.eval()
    correct = 0
    with torch.no_grad():
        for x, y in batches(items, a.batch, False):
            correct += int((m(x).argmax(1) == y).sum())
    return correct / max(1, len(items))


if a.job == "step":
    m = model(10)
    m.train()
    opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(a.batch, 3, 224, 224)
    y = torch.randint(0, 10, (a.batch,))
    for _ in range(2):
        loss = F.cross_entropy(m(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    parts["steps"] = mem()
else:
    classes, per = listing(a.train)
    train, val = [], []
    for k, files in enumerate(per):
        files = files[:]
        random.shuffle(files)
        n_val = round(len(files) * 0.15)
        val += [(f, k) for f in files[:n_val]]
        train += [(f, k) for f in files[n_val:]]
    _, tper = listing(a.test)
    test = [(f, k) for k, files in enumerate(tper) for f in files]
    random.shuffle(train)
    m = model(len(classes))
    drop = len(train) > a.batch
    # the head phase: backbone features under no_grad (inference mode), the head trained on them
    opt = torch.optim.SGD(m.classifier.parameters(), lr=0.01, momentum=0.9)
    for x, y in batches(train, a.batch, drop):
        m.features.eval()
        with torch.no_grad():
            f = F.adaptive_avg_pool2d(m.features(x), 1).flatten(1)
        loss = F.cross_entropy(m.classifier(f), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    parts["head train"] = mem()
    # the full phase
    opt = torch.optim.SGD(m.parameters(), lr=0.005, momentum=0.9)
    m.train()
    for x, y in batches(train, a.batch, drop):
        loss = F.cross_entropy(m(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    parts["fine-tune train"] = mem()
    val_acc = evaluate(m, val)
    parts["fine-tune epoch"] = mem()
    test_acc = evaluate(m, test)
    torch.onnx.export(m, torch.zeros(1, 3, 224, 224), os.path.join(a.out, "torch-memory.onnx"), input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}}, opset_version=13)
    parts["end"] = mem()
print(json.dumps({"peer": "torch", "job": a.job, "parts": parts}), flush=True)
