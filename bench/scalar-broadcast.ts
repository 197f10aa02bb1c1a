/**
 * onnxruntime's CPU Mul of a scalar with a Conv-weight-shaped tensor, by the scalar's shape: a chain of 10 Muls
 * x·k·k·…·k on one tensor, best CPU ms per run of 30, alternating the variants in one process. Shows why the optimizer
 * shapes its scalars to the parameter's rank (src/ir/scalars.ts, scalarsOfRank; docs/benchmarks.md, "Session 8: the
 * optimizer's Muls").
 * Usage: node --import tsx bench/scalar-broadcast.ts [--threads 1] [--dims 1280,320,1,1]
 */
import { parseArgs } from 'node:util';
import { Graph } from '../src/ir/graph.js';
import { DEFAULT_OPSET, Model } from '../src/ir/model.js';
import { createSession, runHost } from '../src/runtime/session.js';
import { Tensor } from '../src/tensor.js';

const { values } = parseArgs({ options: { threads: { type: 'string', default: '1' }, dims: { type: 'string', default: '1280,320,1,1' } } });
const dims = values.dims!.split(',').map(Number);
const size = dims.reduce((a, b) => a * b, 1);
const CHAIN = 10;
const shapes: Record<string, number[]> = { 'rank 0 []': [], 'rank 1 [1]': [1], 'same rank [1,…,1]': dims.map(() => 1) };

async function session(kDims: number[]) {
  const g = new Graph();
  g.inputs.push({ name: 'x', dtype: 'float32', shape: dims });
  g.addInitializer('k', Tensor.f32(kDims, [0.999]));
  let v = 'x';
  for (let i = 0; i < CHAIN; i++) v = g.addNode('Mul', ['k', v], [i === CHAIN - 1 ? 'y' : `m${i}`]).outputs[0]!;
  g.outputs.push({ name: 'y', dtype: 'float32', shape: dims });
  return createSession(new Model(g, DEFAULT_OPSET), { threads: Number(values.threads) });
}

const x = Tensor.f32(dims);
for (let i = 0; i < size; i++) (x.data as Float32Array)[i] = Math.sin(i);
const sessions = await Promise.all(Object.values(shapes).map(session));
const best = sessions.map(() => Number.POSITIVE_INFINITY);
for (let r = 0; r < 30; r++)
  for (const [i, s] of sessions.entries()) {
    const c0 = process.cpuUsage();
    await runHost(s, { x });
    const c = process.cpuUsage(c0);
    best[i] = Math.min(best[i]!, (c.user + c.system) / 1000);
  }
console.log(`scalar × [${dims}] (${size} values), ${CHAIN} chained Muls, ${values.threads} thread(s), best CPU ms per run of 30:`);
for (const [i, name] of Object.keys(shapes).entries())
  console.log(`  ${name.padEnd(20)} ${best[i]!.toFixed(2)} ms  (${((best[i]! * 1e6) / CHAIN / size).toFixed(2)} ns per value per Mul)`);
