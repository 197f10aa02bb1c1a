#!/usr/bin/python3
"""A liveness tally of one onnxruntime run: what is alive at its peak, and when.

Usage (a step at batch 8, the last session's graph and trace):
  GRAFT_ORT_SAVE_OPTIMIZED=/tmp/step.opt.onnx GRAFT_ORT_PROFILE=/tmp/step.prof \\
    node --import tsx bench/memory.ts --child step --step-batch 8
  /usr/bin/python3 bench/step-liveness.py /tmp/step.opt.onnx '/tmp/step.prof*.json' [TOP]

Walks the nodes of the last `model_run` in the trace in their execution order over the optimised graph (node names
match), gives each output the bytes of its `output_type_shape`, treats Reshape/Squeeze/Unsqueeze/Flatten/Identity
outputs as aliases of their input, and frees a buffer after the last reader of any of its aliases. Graph inputs,
outputs and initializers are not counted. Prints the peak, the TOP largest values alive there, and the live bytes
at 20 points of the run. It counts graph values only: kernels' scratch buffers and the allocator's slack are not in
it (docs/benchmarks.md "Session 8": the process holds ~200 MB more at a batch-8 step's peak than this tally).
"""
import glob
import json
import math
import sys

import onnx

ALIAS = {'Reshape', 'Squeeze', 'Unsqueeze', 'Flatten', 'Identity'}
BYTES = {'float': 4, 'int64': 8, 'bool': 1, 'int32': 4, 'double': 8, 'uint8': 1, 'float16': 2}


def main():
    graph = onnx.load(sys.argv[1]).graph
    trace = max(glob.glob(sys.argv[2]), key=lambda p: len(open(p).read()))
    top = int(sys.argv[3]) if len(sys.argv) > 3 else 15
    events = json.load(open(trace))
    run = [e for e in events if e.get('name') == 'model_run'][-1]
    nodes = sorted(
        (e for e in events if e.get('cat') == 'Node' and e['name'].endswith('_kernel_time') and run['ts'] <= e['ts'] <= run['ts'] + run['dur']),
        key=lambda e: e['ts'],
    )
    by_name = {n.name: n for n in graph.node}
    order, size = [], {}
    for e in nodes:
        n = by_name.get(e['name'][: -len('_kernel_time')])
        if n is None:
            continue
        order.append(n)
        for o, ts in zip(n.output, e['args'].get('output_type_shape', [])):
            ((t, shape),) = ts.items()
            size[o] = BYTES.get(t, 4) * (math.prod(shape) if shape else 1)
    keep = {v.name for v in graph.output} | {v.name for v in graph.input} | {t.name for t in graph.initializer}
    alias = {}
    root = lambda v: alias.get(v, v)  # noqa: E731
    for n in order:
        if n.op_type in ALIAS and n.input[0] not in keep:
            alias[n.output[0]] = root(n.input[0])
    last = {}
    for i, n in enumerate(order):
        for x in n.input:
            last[root(x)] = i
    alive, live, peak, at, snap, curve = {}, 0, 0, 0, {}, []
    for i, n in enumerate(order):
        for o in n.output:
            if o and o not in alias and o not in keep:
                alive[o] = size.get(o, 0)
                live += alive[o]
        if live > peak:
            peak, at, snap = live, i, dict(alive)
        curve.append(live)
        for x in set(n.input) | set(n.output):
            r = root(x)
            if r in alive and last.get(r, -1) <= i:
                live -= alive.pop(r)
    print(f'{len(order)} nodes; peak {peak / 1e6:.0f} MB at node {at} ({order[at].name}, {order[at].op_type})')
    for k, v in sorted(snap.items(), key=lambda kv: -kv[1])[:top]:
        print(f'  {v / 1e6:8.1f} MB  {k}')
    print('live MB along the run:', [round(curve[i] / 1e6) for i in range(0, len(curve), max(1, len(curve) // 20))])


if __name__ == '__main__':
    main()
