#!/usr/bin/env python3
"""Generates the PyTorch-exported ONNX fixtures committed under test/fixtures/.

Run once from the repository root (needs PyTorch; `npm test` does NOT):

    /usr/bin/python3 bench/make-fixtures.py

Writes:
  test/fixtures/torch-tiny.onnx  a small CNN (Conv, BatchNorm, ReLU, MaxPool, Flatten, Linear, Dropout)
                                 exported with torch.onnx.export, opset 17, dynamic batch axis "batch".
  test/fixtures/torch-tiny.json  export details, a fixed input batch and PyTorch's outputs for it, so the
                                 test can check that onnxruntime reproduces PyTorch's numbers.
The output is deterministic (fixed seed); re-running only changes the files if PyTorch's exporter changes.
"""
import io
import json
import os

import torch

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test", "fixtures")


class TinyNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = torch.nn.Sequential(
            torch.nn.Conv2d(3, 8, kernel_size=3, padding=1),
            torch.nn.BatchNorm2d(8),
            torch.nn.ReLU(),
            torch.nn.MaxPool2d(2),
        )
        self.head = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Dropout(0.1), torch.nn.Linear(8 * 4 * 4, 10))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(image))


def main() -> None:
    torch.manual_seed(0)
    net = TinyNet()
    # give BatchNorm non-trivial running statistics, then freeze for export
    with torch.no_grad():
        net.features[1].running_mean.uniform_(-0.5, 0.5)
        net.features[1].running_var.uniform_(0.5, 1.5)
    net.eval()
    x = torch.randn(2, 3, 8, 8)
    buf = io.BytesIO()
    torch.onnx.export(
        net,
        x,
        buf,
        opset_version=17,
        input_names=["image"],
        output_names=["logits"],
        dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
        do_constant_folding=True,
    )
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "torch-tiny.onnx"), "wb") as f:
        f.write(buf.getvalue())
    with torch.no_grad():
        y = net(x)
    meta = {
        "generator": "bench/make-fixtures.py",
        "torch_version": torch.__version__,
        "opset": 17,
        "input": {"name": "image", "dims": list(x.shape), "data": [float(v) for v in x.flatten()]},
        "output": {"name": "logits", "dims": list(y.shape), "data": [float(v) for v in y.flatten()]},
    }
    with open(os.path.join(OUT, "torch-tiny.json"), "w") as f:
        json.dump(meta, f)
    print(f"wrote torch-tiny.onnx ({len(buf.getvalue())} bytes) and torch-tiny.json with torch {torch.__version__}")


if __name__ == "__main__":
    main()
