/**
 * A transformer encoder exported to ONNX the Hugging Face way (inputs `input_ids`, `attention_mask`, optionally
 * `token_type_ids`; first output the hidden states [N, T, H]) made into a graft text encoder: one int64 input,
 * `input_ids` [N, T] padded with the tokenizer's pad id, and one output, `embedding` [N, H]. Inside the graph the
 * attention mask is `input_ids != padId`, the token types are zeros, and the hidden states are pooled: `mean`
 * over the real tokens (sentence-transformers' default) or `cls` (the first token).
 */
import fs from 'node:fs';
import path from 'node:path';
import type { HfTokenizerSpec } from '../data/tokenize.js';
import { Emitter, inferShapes } from '../ir/emit.js';
import type { Model } from '../ir/model.js';
import { loadModel } from '../onnx/io.js';
import { registerStandardOps } from '../ops/index.js';
import { Tensor } from '../tensor.js';
import { TEXT_EMBEDDING, TEXT_INPUT } from './text-encoders.js';

/** How a transformer's hidden states become one embedding per text. */
export type TransformerPooling = 'mean' | 'cls';

/** Token ids read per text by default (the position embeddings of BERT-family encoders stop at 512). */
export const TRANSFORMER_MAX_TOKENS = 256;

const ONNX_INT64 = 7;
const ONNX_FLOAT = 1;

/**
 * The graft text encoder of a Hugging Face-style transformer graph (see the module comment).
 * @throws naming `where` when the graph has no int64 token-id input, or inputs other than the three known ones.
 */
export function wrapTransformer(model: Model, opts: { padId: number; pooling: TransformerPooling; where: string }): Model {
  registerStandardOps();
  const m = model.clone();
  const g = m.graph;
  const free = g.inputs.filter((i) => !g.initializers.has(i.name));
  const ids = free.find((i) => i.name === 'input_ids') ?? free.find((i) => i.dtype === 'int64');
  if (ids?.dtype !== 'int64')
    throw new Error(
      `${opts.where}: no int64 token-id input (inputs: ${free.map((i) => `${i.name} ${i.dtype}`).join(', ')}); pass a transformer exported with input_ids.`,
    );
  const others = free.filter((i) => i !== ids);
  const unknown = others.filter((i) => i.name !== 'attention_mask' && i.name !== 'token_type_ids');
  if (unknown.length)
    throw new Error(
      `${opts.where}: input(s) ${unknown.map((i) => i.name).join(', ')} are not input_ids, attention_mask or token_type_ids; graft feeds only those. Export the encoder with them.`,
    );
  inferShapes(g, m.opset);
  const e = new Emitter(g, m.opset, 'graft_text/');
  // one input: token ids; the mask and token types are computed from them
  if (ids.name !== TEXT_INPUT) g.rename(ids.name, TEXT_INPUT);
  ids.shape = ['N', 'T'];
  const real = e.op('Not', [e.op('Equal', [TEXT_INPUT, e.constTensor(Tensor.i64([], [opts.padId]), 'pad_id')])]);
  for (const o of others) {
    const src = o.name === 'attention_mask' ? e.op('Cast', [real], { to: ONNX_INT64 }) : e.op('Mul', [TEXT_INPUT, e.constTensor(Tensor.i64([], [0]), 'zero')]);
    g.addNode('Identity', [src], [o.name], {}, g.fresh(`graft_text/${o.name}`));
    g.valueInfo.set(o.name, { name: o.name, dtype: 'int64', shape: ['N', 'T'] });
  }
  g.inputs = g.inputs.filter((i) => !others.includes(i));
  g.topoSort();
  const hidden = g.outputs[0]!.name;
  let pooled: string;
  if (opts.pooling === 'cls') pooled = e.op('Gather', [hidden, e.constTensor(Tensor.i64([], [0]), 'first')], { axis: 1 });
  else {
    const w = e.op('Cast', [real], { to: ONNX_FLOAT });
    const sum = e.reduceSum(e.mul(hidden, e.unsqueeze(w, [2])), [1], false);
    pooled = e.div(sum, e.op('Max', [e.reduceSum(w, [1], true), e.scalar(1e-9)]));
  }
  g.addNode('Identity', [pooled], [TEXT_EMBEDDING], {}, g.fresh('graft_text/embedding'));
  g.outputs = [{ name: TEXT_EMBEDDING, dtype: 'float32', shape: ['N', g.info(pooled)?.shape?.[1] ?? null] }];
  g.prune();
  m.metadata['graft.cut'] = TEXT_EMBEDDING;
  m.metadata['graft.encoder'] = `transformer-${opts.pooling}`;
  return m;
}

/** The `tokenizer.json` of a transformer .onnx: beside it, or one folder up (the hub's `onnx/model.onnx` layout). */
export function findHfTokenizer(onnxFile: string): string | undefined {
  const dir = path.dirname(path.resolve(onnxFile));
  return [path.join(dir, 'tokenizer.json'), path.join(path.dirname(dir), 'tokenizer.json')].find((f) => fs.existsSync(f));
}

/**
 * A transformer encoder file and its `tokenizer.json` (and `tokenizer_config.json` beside it, if any) as a graft
 * text encoder and its tokenizer spec.
 * @throws naming the file when the tokenizer cannot be read.
 */
export function loadTransformerEncoder(onnxFile: string, tokenizerFile: string, pooling: TransformerPooling): { model: Model; tokenizer: HfTokenizerSpec } {
  const read = (f: string) => {
    try {
      return JSON.parse(fs.readFileSync(f, 'utf8')) as Record<string, unknown>;
    } catch (e) {
      throw new Error(`Cannot read ${f}: ${(e as Error).message}. Put the encoder's tokenizer.json beside ${onnxFile}.`);
    }
  };
  const tokenizer = read(tokenizerFile);
  const cfgFile = path.join(path.dirname(tokenizerFile), 'tokenizer_config.json');
  const config = fs.existsSync(cfgFile) ? read(cfgFile) : undefined;
  const padId = padIdOf(tokenizer);
  const spec: HfTokenizerSpec = { kind: 'hf', maxTokens: TRANSFORMER_MAX_TOKENS, padId, tokenizer, ...(config ? { config } : {}) };
  const model = wrapTransformer(loadModel(onnxFile), { padId, pooling, where: onnxFile });
  return { model, tokenizer: spec };
}

/** The pad id of a tokenizer.json: its padding setting, else the id of [PAD] or <pad>, else 0. */
function padIdOf(t: Record<string, unknown>): number {
  const padding = t.padding as { pad_id?: unknown } | null | undefined;
  if (padding && Number.isInteger(padding.pad_id)) return padding.pad_id as number;
  const added = (t.added_tokens ?? []) as { id?: number; content?: string }[];
  const pad = added.find((a) => a.content === '[PAD]' || a.content === '<pad>');
  if (pad && Number.isInteger(pad.id)) return pad.id!;
  const vocab = (t.model as { vocab?: Record<string, number> } | undefined)?.vocab;
  return vocab && !Array.isArray(vocab) ? (vocab['[PAD]'] ?? vocab['<pad>'] ?? 0) : 0;
}
