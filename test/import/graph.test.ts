/**
 * TensorFlow.js graph models: nsfwjs's MobileNetV2Mid (a converted TF-Hub SavedModel with fused convolutions)
 * and a hand-built GraphDef using the rest of the supported ops, each run by tfjs's own graph executor and by
 * onnxruntime after import; plus the error for an unsupported op.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { importTfjsGraph, importUnwrapped, loadNsfwjsModel } from '../../src/import/index.js';
import type { TfjsWeightSpec } from '../../src/import/weights.js';
import { artifactsOf, maxAbsDiff, randomData, runImported, tf } from './helpers.js';

const TOL = 1e-4;

test('nsfwjs MobileNetV2Mid (graph model) matches tfjs on features (1792-d) and probabilities', async () => {
  const m = loadNsfwjsModel('MobileNetV2Mid');
  const imported = importUnwrapped(m);
  const a = artifactsOf(m);
  const ref = await tf.loadGraphModel(tf.io.fromMemory({ modelTopology: a.modelTopology as never, weightSpecs: a.weightSpecs, weightData: a.weightData }));
  const feature = imported.metadata['graft.cut']!;
  assert.match(feature, /feature_vector\/SpatialSqueeze$/);
  const x = randomData(224 * 224 * 3, 21);
  const [p, f] = ref.execute(tf.tensor(x, [1, 224, 224, 3]), ['Identity', feature]) as tf.Tensor[];
  const got = await runImported(imported, x, [1, 224, 224, 3]);
  const df = maxAbsDiff(got.features!.data as Float32Array, f!.dataSync());
  const dp = maxAbsDiff(got.probabilities!.data as Float32Array, p!.dataSync());
  if (process.env.GRAFT_TEST_VERBOSE) console.log(`MobileNetV2Mid: features ${df}, probabilities ${dp}`);
  assert.ok(df <= TOL, `features max abs diff ${df}`);
  assert.ok(dp <= TOL, `probabilities max abs diff ${dp}`);
});

/** A tiny GraphDef builder: nodes with TF AttrValue JSON, constants stored as weights. */
class GraphBuilder {
  nodes: { name: string; op: string; input?: string[]; attr?: Record<string, unknown> }[] = [];
  specs: TfjsWeightSpec[] = [];
  data: number[] = [];
  private seed = 100;
  node(name: string, op: string, input: string[] = [], attr: Record<string, unknown> = {}): string {
    this.nodes.push({ name, op, input, attr: { T: { type: 'DT_FLOAT' }, ...attr } });
    return name;
  }
  /** A float constant with random values in [lo, hi). */
  randomConst(name: string, shape: number[], lo = -0.5, hi = 0.5): string {
    return this.constant(
      name,
      shape,
      Array.from(
        randomData(
          shape.reduce((a, b) => a * b, 1),
          this.seed++,
          lo,
          hi,
        ),
      ),
    );
  }
  constant(name: string, shape: number[], values: number[], dtype: 'float32' | 'int32' = 'float32'): string {
    this.nodes.push({ name, op: 'Const', attr: { dtype: { type: dtype === 'float32' ? 'DT_FLOAT' : 'DT_INT32' }, value: { tensor: { dtype: 'DT_FLOAT' } } } });
    this.specs.push({ name, shape, dtype });
    this.data.push(...values.map((v) => (dtype === 'int32' ? v | 0 : v)));
    return name;
  }
  artifacts() {
    const buf = new ArrayBuffer(this.data.length * 4);
    let at = 0;
    for (const s of this.specs) {
      const n = s.shape.reduce((a, b) => a * b, 1);
      const view = s.dtype === 'int32' ? new Int32Array(buf, at * 4, n) : new Float32Array(buf, at * 4, n);
      view.set(this.data.slice(at, at + n));
      at += n;
    }
    return { modelTopology: { node: this.nodes, versions: { producer: 1 } }, weightSpecs: this.specs, weightData: buf };
  }
}

const s = (v: string) => ({ s: Buffer.from(v).toString('base64') });
const li = (...v: number[]) => ({ list: { i: v.map(String) } });
const ls = (...v: string[]) => ({ list: { s: v.map((x) => Buffer.from(x).toString('base64')) } });
const NHWC = { data_format: s('NHWC') };

test('a hand-built graph with every other supported op matches tfjs', async () => {
  const b = new GraphBuilder();
  b.node('x', 'Placeholder', [], { dtype: { type: 'DT_FLOAT' }, shape: { shape: { dim: [{ size: '-1' }, { size: '9' }, { size: '8' }, { size: '3' }] } } });
  const scaled = b.node('scaled', 'Sub', [b.node('mul', 'Mul', ['x', b.constant('two', [], [2])]), b.constant('one', [], [1])]);
  const c1 = b.node('c1', 'Conv2D', [scaled, b.randomConst('w1', [3, 3, 3, 4])], {
    ...NHWC,
    strides: li(1, 2, 2, 1),
    padding: s('SAME'),
    dilations: li(1, 1, 1, 1),
  });
  const r1 = b.node('r1', 'Relu6', [b.node('ba1', 'BiasAdd', [c1, b.randomConst('b1', [4])], NHWC)]);
  const bn = b.node(
    'bn',
    'FusedBatchNormV3',
    [r1, b.randomConst('g', [4]), b.randomConst('be', [4]), b.randomConst('mu', [4]), b.randomConst('var', [4], 0.5, 1.5)],
    {
      ...NHWC,
      epsilon: { f: 0.001 },
    },
  );
  const dw = b.node('dw', 'DepthwiseConv2dNative', [bn, b.randomConst('wd', [3, 3, 4, 2])], {
    ...NHWC,
    strides: li(1, 1, 1, 1),
    padding: s('VALID'),
    dilations: li(1, 1, 1, 1),
  });
  const fc = b.node('fc', '_FusedConv2D', [dw, b.randomConst('wf', [2, 2, 8, 6]), b.randomConst('bf', [6]), b.randomConst('alpha', [6])], {
    ...NHWC,
    strides: li(1, 1, 1, 1),
    padding: s('EXPLICIT'),
    explicit_paddings: li(0, 0, 1, 0, 0, 1, 0, 0),
    dilations: li(1, 1, 1, 1),
    fused_ops: ls('BiasAdd', 'Prelu'),
    num_args: { i: '2' },
  });
  const fd = b.node('fd', 'FusedDepthwiseConv2dNative', [fc, b.randomConst('wfd', [3, 3, 6, 1]), b.randomConst('bfd', [6])], {
    ...NHWC,
    strides: li(1, 2, 2, 1),
    padding: s('SAME'),
    dilations: li(1, 1, 1, 1),
    fused_ops: ls('BiasAdd', 'Relu'),
    num_args: { i: '1' },
  });
  const mp = b.node('mp', 'MaxPool', [fd], { ...NHWC, ksize: li(1, 2, 2, 1), strides: li(1, 1, 1, 1), padding: s('SAME') });
  const ap = b.node('ap', 'AvgPool', [mp], { ...NHWC, ksize: li(1, 3, 2, 1), strides: li(1, 1, 1, 1), padding: s('SAME') });
  const pd = b.node('pd', 'Pad', [ap, b.constant('pads', [4, 2], [0, 0, 1, 0, 0, 2, 0, 0], 'int32')]);
  const t = b.node('t', 'Tanh', [b.node('mx', 'Maximum', [pd, b.randomConst('floor', [6])])]);
  const cat = b.node('cat', 'ConcatV2', [t, b.node('sg', 'Sigmoid', [pd]), b.constant('axis', [], [3], 'int32')], { N: { i: '2' } });
  const mean = b.node('mean', 'Mean', [cat, b.constant('axes', [2], [1, 2], 'int32')], { keep_dims: { b: true } });
  const sq = b.node('sq', 'Squeeze', [mean], { squeeze_dims: li(1, 2) });
  const el = b.node('el', 'Elu', [
    b.node('mm', '_FusedMatMul', [sq, b.randomConst('wm', [12, 7]), b.randomConst('bm', [7])], {
      fused_ops: ls('BiasAdd', 'Relu6'),
      num_args: { i: '1' },
      transpose_a: { b: false },
      transpose_b: { b: false },
    }),
  ]);
  const lr = b.node('lr', 'LeakyRelu', [b.node('dv', 'RealDiv', [el, b.constant('three', [], [3])])], { alpha: { f: 0.1 } });
  const rs = b.node('rs', 'Reshape', [lr, b.constant('shape', [3], [-1, 7, 1], 'int32')]);
  const tr = b.node('tr', 'Transpose', [rs, b.constant('perm', [3], [0, 2, 1], 'int32')]);
  const rq = b.node('rq', 'Reshape', [tr, b.constant('shape2', [2], [-1, 7], 'int32')]);
  const mm2 = b.node('mm2', 'MatMul', [rq, b.randomConst('wm2', [4, 7])], { transpose_a: { b: false }, transpose_b: { b: true } });
  const sm = b.node('sm', 'Softmax', [b.node('mn', 'Minimum', [b.node('ad', 'AddV2', [mm2, b.randomConst('bias2', [4])]), b.constant('cap', [], [0.3])])]);
  b.node('Identity', 'Identity', [sm]);
  const a = b.artifacts();
  const imported = importTfjsGraph({
    modelTopology: a.modelTopology,
    weightsManifest: [{ paths: ['w'], weights: a.weightSpecs }],
    readShard: () => new Uint8Array(a.weightData),
  });
  const ref = await tf.loadGraphModel(tf.io.fromMemory({ modelTopology: a.modelTopology as never, weightSpecs: a.weightSpecs, weightData: a.weightData }));
  const x = randomData(2 * 9 * 8 * 3, 22);
  const [want, feat] = ref.execute(tf.tensor(x, [2, 9, 8, 3]), ['Identity', 'sq']) as tf.Tensor[];
  const got = await runImported(imported, x, [2, 9, 8, 3]);
  assert.deepEqual(
    imported.graph.outputs.map((o) => o.name),
    ['logits', 'probabilities', 'features'],
  );
  const dp = maxAbsDiff(got.probabilities!.data as Float32Array, want!.dataSync());
  const df = maxAbsDiff(got.features!.data as Float32Array, feat!.dataSync());
  assert.ok(dp <= TOL && df <= TOL, `max abs diff: probabilities ${dp}, features ${df}`);
  assert.ok(Math.max(...Array.from(feat!.dataSync(), Math.abs)) > 0.05, 'features are not trivially small');
});

test('an unsupported TensorFlow op is one error naming the op and a node using it', () => {
  const b = new GraphBuilder();
  b.node('x', 'Placeholder', [], { dtype: { type: 'DT_FLOAT' }, shape: { shape: { dim: [{ size: '-1' }, { size: '4' }] } } });
  b.node('y', 'Cumsum', ['x', b.constant('ax', [], [1], 'int32')]);
  b.node('z', 'Relu', ['y']);
  const a = b.artifacts();
  assert.throws(
    () => importTfjsGraph({ modelTopology: a.modelTopology, weightsManifest: [], readShard: () => new Uint8Array(0), source: 'g.json' }),
    /^Error: g\.json: TensorFlow op Cumsum \(node "y"\) is not supported by graft's graph importer\. Supported: .*_FusedConv2D.*Export the model as a layers model/,
  );
});
