/**
 * A small BERT-style transformer encoder, built from standard ONNX ops with the Hugging Face interface and
 * parameter names (`embeddings.word_embeddings.weight`, `encoder.layer.0.attention.self.query.weight`, …):
 * inputs `input_ids`, `attention_mask`, `token_type_ids` (int64 [N, T]), output `last_hidden_state` [N, T, H].
 * Post-LayerNorm blocks: multi-head self-attention with the additive mask (1 − mask) · −10000, then a GELU
 * feed-forward, each followed by a residual and LayerNormalization. Weights are drawn like BERT's (normal, std
 * 0.02); graft's tests use it as a stand-in for a hub encoder (any size, no download).
 */
import { Emitter } from '../../ir/emit.js';
import { Graph } from '../../ir/graph.js';
import { DEFAULT_OPSET, Model } from '../../ir/model.js';
import { registerStandardOps } from '../../ops/index.js';
import { Rng, Tensor } from '../../tensor.js';
import { full, normal } from '../init.js';
import { addParam } from '../module.js';

/** Sizes of {@link bertEncoder}. */
export interface BertOptions {
  vocabSize: number;
  /** Hidden width H (default 32). */
  hidden?: number;
  /** Attention heads (default 2; must divide `hidden`). */
  heads?: number;
  /** Blocks (default 2). */
  layers?: number;
  /** Feed-forward width (default 4 · hidden). */
  intermediate?: number;
  /** Longest sequence (position embeddings; default 128). */
  maxPositions?: number;
  /** Seed of the weights (default 0). */
  seed?: number;
}

/** Builds the encoder (see the module comment). */
export function bertEncoder(o: BertOptions): Model {
  const H = o.hidden ?? 32;
  const heads = o.heads ?? 2;
  const L = o.layers ?? 2;
  const F = o.intermediate ?? 4 * H;
  const P = o.maxPositions ?? 128;
  if (H % heads) throw new Error(`bertEncoder: hidden ${H} is not a multiple of heads ${heads}; pick sizes where heads divides hidden.`);
  const dh = H / heads;
  registerStandardOps();
  const g = new Graph();
  g.name = 'bert_encoder';
  for (const name of ['input_ids', 'attention_mask', 'token_type_ids']) g.inputs.push({ name, dtype: 'int64', shape: ['N', 'T'] });
  const e = new Emitter(g, DEFAULT_OPSET);
  const rng = new Rng(o.seed ?? 0);
  const who = 'bertEncoder';
  const w = (name: string, dims: number[]) => addParam(e, name, normal(rng, dims, 0, 0.02), who);
  const zeros = (name: string, n: number) => addParam(e, name, full([n], 0), who);
  const ones = (name: string, n: number) => addParam(e, name, full([n], 1), who);
  const layerNorm = (x: string, p: string) => e.op('LayerNormalization', [x, ones(`${p}.weight`, H), zeros(`${p}.bias`, H)], { axis: -1, epsilon: 1e-12 });
  const linear = (x: string, p: string, i: number, out: number) => e.add(e.op('MatMul', [x, w(`${p}.weight`, [i, out])]), zeros(`${p}.bias`, out));

  // embeddings: word + position + token type, then LayerNorm
  const T = e.op('Slice', [e.op('Shape', ['input_ids']), e.ints([1]), e.ints([2])]);
  const positions = e.op('Range', [e.constTensor(Tensor.i64([], [0]), 'zero'), e.op('Squeeze', [T, e.ints([0])]), e.constTensor(Tensor.i64([], [1]), 'one')]);
  let x = e.add(
    e.add(
      e.op('Gather', [w('embeddings.word_embeddings.weight', [o.vocabSize, H]), 'input_ids']),
      e.op('Gather', [w('embeddings.position_embeddings.weight', [P, H]), positions]),
    ),
    e.op('Gather', [w('embeddings.token_type_embeddings.weight', [2, H]), 'token_type_ids']),
  );
  x = layerNorm(x, 'embeddings.LayerNorm');
  // additive attention mask [N, 1, 1, T]
  const maskF = e.op('Cast', ['attention_mask'], { to: 1 });
  const bias = e.mul(e.sub(e.scalar(1), e.unsqueeze(maskF, [1, 2])), e.scalar(-10000));
  const split = (v: string) => e.transpose(e.op('Reshape', [v, e.ints([0, 0, heads, dh])]), [0, 2, 1, 3]); // [N, h, T, dh]
  for (let l = 0; l < L; l++) {
    const p = `encoder.layer.${l}`;
    const q = split(linear(x, `${p}.attention.self.query`, H, H));
    const k = split(linear(x, `${p}.attention.self.key`, H, H));
    const v = split(linear(x, `${p}.attention.self.value`, H, H));
    const scores = e.add(e.mul(e.op('MatMul', [q, e.transpose(k, [0, 1, 3, 2])]), e.scalar(1 / Math.sqrt(dh))), bias);
    const ctx = e.op('MatMul', [e.op('Softmax', [scores], { axis: -1 }), v]);
    const merged = e.op('Reshape', [e.transpose(ctx, [0, 2, 1, 3]), e.ints([0, 0, H])]);
    x = layerNorm(e.add(linear(merged, `${p}.attention.output.dense`, H, H), x), `${p}.attention.output.LayerNorm`);
    const inner = linear(x, `${p}.intermediate.dense`, H, F);
    const act = e.mul(e.mul(inner, e.add(e.op('Erf', [e.mul(inner, e.scalar(Math.SQRT1_2))]), e.scalar(1))), e.scalar(0.5));
    x = layerNorm(e.add(linear(act, `${p}.output.dense`, F, H), x), `${p}.output.LayerNorm`);
  }
  g.addNode('Identity', [x], ['last_hidden_state'], {}, 'last_hidden_state_out');
  g.outputs.push({ name: 'last_hidden_state', dtype: 'float32', shape: ['N', 'T', H] });
  const m = new Model(g, DEFAULT_OPSET);
  m.metadata['graft.builder'] = 'bertEncoder';
  return m;
}
