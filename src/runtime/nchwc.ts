/**
 * onnxruntime's NCHWc block size on this CPU, asked of onnxruntime itself: its `ReorderInput` kernel pads the channels
 * to a multiple of the block (MlasNchwcGetBlockSize: 16 with AVX-512, 8 with AVX2, 1 where MLAS has no NCHWc
 * kernels), so reordering a 4-channel image gives the block as the output's channel count. Used by createSession
 * (./session.ts) to put depthwise Convs with trainable weights on the NCHWc kernel (runtime/nchwc-depthwise.ts).
 */
import * as ort from 'onnxruntime-node';
import { Graph } from '../ir/graph.js';
import { DEFAULT_OPSET, Model } from '../ir/model.js';
import { encodeModel } from '../onnx/io.js';
import { NCHWC_DOMAIN } from './nchwc-depthwise.js';

let probe: Promise<number | null> | undefined;

/**
 * The NCHWc block size of onnxruntime's CPU provider here, or null where it has no NCHWc kernels (a build without
 * the contrib ops, or a CPU MLAS has none for) or env GRAFT_ORT_NCHWC=0 turns the rewrite off. Asked once per process.
 */
export function nchwcBlock(): Promise<number | null> {
  if (process.env.GRAFT_ORT_NCHWC === '0') return Promise.resolve(null);
  probe ??= (async () => {
    try {
      const g = new Graph();
      g.inputs.push({ name: 'x', dtype: 'float32', shape: [1, 4, 1, 1] });
      g.addNode('ReorderInput', ['x'], ['y']).domain = NCHWC_DOMAIN;
      g.outputs.push({ name: 'y', dtype: 'float32', shape: [1, null, 1, 1] });
      const m = new Model(g, DEFAULT_OPSET);
      m.otherOpsets = [{ domain: NCHWC_DOMAIN, version: 1 }];
      const s = await ort.InferenceSession.create(encodeModel(m), { executionProviders: ['cpu'], logSeverityLevel: 4 });
      const y = (await s.run({ x: new ort.Tensor('float32', new Float32Array(4), [1, 4, 1, 1]) })).y!;
      await s.release();
      const block = Number(y.dims[1]);
      return block > 1 && block % 4 === 0 ? block : null;
    } catch {
      return null;
    }
  })();
  return probe;
}
