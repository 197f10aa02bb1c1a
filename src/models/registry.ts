/**
 * The model registry: the pretrained architectures graft knows, the preprocessing their weights expect, and how
 * to get those weights as ONNX — a PyTorch export command (torchvision, timm), a download URL with its size and
 * SHA-256, or a model bundled in an npm package (nsfwjs, converted by graft's importer). Extra entries come from
 * JSON files named by the `GRAFT_REGISTRY` environment variable.
 */
import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { IMAGENET_MEAN, IMAGENET_STD, type PreprocessConfig, type PreprocessConfigInput, parsePreprocessConfig, preprocessSchema } from '../data/preprocess.js';
import { NSFWJS_MODELS, type NsfwjsModelName } from '../import/nsfwjs.js';
import { editDistance } from '../util/edit-distance.js';
import { describeFsError } from '../util/fs-errors.js';

/** Where an entry's weights come from. `onnx`: a plain ONNX file (custom entries). */
export type ModelFamily = 'torchvision' | 'timm' | 'nsfwjs' | 'onnx';

/** An ONNX file `graft models fetch` can download. */
export interface ModelDownload {
  /** http(s) URL (redirects are followed). */
  url: string;
  /** Lower-case hex SHA-256 of the file; checked after the download when given. */
  sha256?: string;
  /** Size in bytes; checked after the download (and against the cached file) when given. */
  size?: number;
}

/** A web page where ONNX weights of the architecture are published (listed, never fetched automatically). */
export interface ModelLink {
  title: string;
  url: string;
}

/** One registry entry. */
export interface ModelEntry {
  /** Registry name, e.g. `resnet18`, `timm:efficientnet_b0.ra_in1k`, `nsfwjs:MobileNetV2` (case-insensitive). */
  name: string;
  /** Other names that find this entry, e.g. `torchvision:resnet18`. */
  aliases?: string[];
  family: ModelFamily;
  /** One line: what the model is. */
  description: string;
  /** What the weights were trained on, e.g. `ImageNet-1k`. */
  dataset?: string;
  /** Classes of the pretrained classifier. */
  classes?: number;
  /** Width of the pooled features at the feature cut (the `inFeatures` of a new head). */
  features?: number;
  /** Parameter count of the pretrained model. */
  parameters?: number;
  /** Preprocessing the weights expect (validated like a model.json `preprocess`; `size` is required). */
  preprocess: PreprocessConfigInput;
  /** A downloadable ONNX file. */
  download?: ModelDownload;
  /** A shell command that writes the ONNX file (`<file>.onnx` in the current folder). */
  export?: string;
  /** The nsfwjs model that `graft models fetch` converts from the installed npm package. */
  nsfwjs?: NsfwjsModelName;
  /** Where ONNX exports of this architecture are published. */
  links?: ModelLink[];
  notes?: string[];
  license?: string;
}

const IMAGENET = { mean: [...IMAGENET_MEAN], std: [...IMAGENET_STD] };

/** Keyword arguments shared by every export command: opset 17, a dynamic batch axis, BatchNorm kept as BatchNormalization. */
const EXPORT_ARGS =
  "opset_version=17, input_names=['input'], output_names=['logits'], dynamic_axes={'input': {0: 'N'}, 'logits': {0: 'N'}}, training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False, **({'dynamo': False} if 'dynamo' in inspect.signature(torch.onnx.export).parameters else {})";

/**
 * The command that exports a torchvision classifier with its default pretrained weights to `<arch>.onnx`.
 * `training=TrainingMode.PRESERVE` keeps BatchNormalization nodes (the default eval export folds them into the
 * convolutions, which leaves nothing for fine-tuning to adapt), `do_constant_folding=False` keeps the initializers
 * named after the state_dict (`layer4.1.conv2.weight`, so freezing by prefix works), and `dynamo=False` (passed only
 * where the installed PyTorch knows it) selects the TorchScript exporter that honours both.
 */
export function torchvisionExportCommand(arch: string, size = 224): string {
  return `python -c "import inspect, torch, torchvision; m = torchvision.models.${arch}(weights='DEFAULT').eval(); torch.onnx.export(m, torch.randn(1, 3, ${size}, ${size}), '${arch}.onnx', ${EXPORT_ARGS})"`;
}

/** The command that exports a timm model (`pip install timm`) with pretrained weights to `<file>.onnx`. */
export function timmExportCommand(model: string, file: string, size = 224): string {
  return `python -c "import inspect, torch, timm; m = timm.create_model('${model}', pretrained=True).eval(); torch.onnx.export(m, torch.randn(1, 3, ${size}, ${size}), '${file}.onnx', ${EXPORT_ARGS})"`;
}

const ONNX_ZOO: ModelLink = {
  title: 'ONNX Model Zoo, image classification (opsets 7–12: convert to opset ≥ 13 with onnx.version_converter first)',
  url: 'https://github.com/onnx/models/tree/main/validated/vision/classification',
};

function torchvisionEntry(
  arch: string,
  o: {
    description: string;
    weights: string;
    features: number;
    parameters: number;
    resize: number;
    interpolation?: 'bilinear' | 'bicubic';
    links?: ModelLink[];
  },
): ModelEntry {
  return {
    name: arch,
    aliases: [`torchvision:${arch}`],
    family: 'torchvision',
    description: o.description,
    dataset: 'ImageNet-1k',
    classes: 1000,
    features: o.features,
    parameters: o.parameters,
    preprocess: { size: 224, resize: 'crop', cropFraction: 224 / o.resize, ...IMAGENET, interpolation: o.interpolation ?? 'bilinear' },
    export: torchvisionExportCommand(arch),
    links: [
      { title: `torchvision ${o.weights} weights`, url: `https://pytorch.org/vision/stable/models/generated/torchvision.models.${arch}.html` },
      ...(o.links ?? []),
    ],
    license: 'BSD-3-Clause (torchvision)',
  };
}

function timmEntry(model: string, o: { description: string; features: number; parameters: number; cropFraction: number }): ModelEntry {
  const file = `timm-${model}`;
  return {
    name: `timm:${model}`,
    family: 'timm',
    description: o.description,
    dataset: 'ImageNet-1k',
    classes: 1000,
    features: o.features,
    parameters: o.parameters,
    preprocess: { size: 224, resize: 'crop', cropFraction: o.cropFraction, ...IMAGENET, interpolation: 'bicubic' },
    export: timmExportCommand(model, file),
    links: [
      { title: 'timm weights and pretrained config on Hugging Face', url: `https://huggingface.co/timm/${model}` },
      { title: 'ONNX exports for transformers.js (check the opset with graft inspect)', url: `https://huggingface.co/onnx-community/${model}` },
    ],
    license: 'Apache-2.0 (timm)',
  };
}

function nsfwjsEntry(name: NsfwjsModelName, o: { description: string; size: number; features: number }): ModelEntry {
  return {
    name: `nsfwjs:${name}`,
    family: 'nsfwjs',
    description: o.description,
    dataset: 'the nsfwjs classes Drawing, Hentai, Neutral, Porn, Sexy',
    classes: 5,
    features: o.features,
    preprocess: { size: o.size, resize: 'stretch', scale: 255 },
    nsfwjs: name,
    links: [{ title: 'nsfwjs on npm (bundled with graft)', url: 'https://www.npmjs.com/package/nsfwjs' }],
    notes: ['Converted from the installed nsfwjs package by `graft import`; no network needed.'],
    license: 'MIT (nsfwjs)',
  };
}

/** Where the ONNX Model Zoo's files are served (Git LFS, through GitHub's raw redirect). */
const ZOO_RAW = 'https://github.com/onnx/models/raw/main/validated/vision/classification';

/**
 * An ONNX Model Zoo classifier, downloaded directly (no Python). Size and SHA-256 are the `oid` and `size` of the
 * Git LFS pointer file in github.com/onnx/models (they agree with its ONNX_HUB_MANIFEST.json). The zoo's files
 * use opsets 7–12, which graft reads as 13 (onnx/upgrade.ts).
 */
function zooEntry(
  name: string,
  o: {
    file: string;
    description: string;
    sha256: string;
    size: number;
    opset: number;
    features: number;
    preprocess: PreprocessConfigInput;
    cut: string;
    notes?: string[];
  },
): ModelEntry {
  return {
    name,
    aliases: [`onnx-zoo:${name}`],
    family: 'onnx',
    description: o.description,
    dataset: 'ImageNet-1k',
    classes: 1000,
    features: o.features,
    preprocess: o.preprocess,
    download: { url: `${ZOO_RAW}/${o.file}`, sha256: o.sha256, size: o.size },
    links: [{ title: 'ONNX Model Zoo', url: `https://github.com/onnx/models/tree/main/validated/vision/classification/${o.file.split('/')[0]}` }],
    notes: [`ONNX opset ${o.opset}. Feature cut: ${o.cut}.`, ...(o.notes ?? [])],
    license: 'Apache-2.0 (ONNX Model Zoo)',
  };
}

/** ImageNet mean/std, shorter side to 256 then a 224 centre crop (0.875), NCHW: the zoo's imagenet_preprocess.py. */
const ZOO_IMAGENET: PreprocessConfigInput = { size: 224, resize: 'crop', cropFraction: 0.875, ...IMAGENET, interpolation: 'bilinear' };

/** The entries graft ships with. */
export const BUILTIN_MODELS: readonly ModelEntry[] = [
  zooEntry('mobilenetv2', {
    file: 'mobilenet/model/mobilenetv2-12.onnx',
    description: 'MobileNetV2 1.0 (ONNX Model Zoo, MXNet Gluon), downloaded directly',
    sha256: 'c0c3f76d93fa3fd6580652a45618618a220fced18babf65774ed169de0432ad5',
    size: 13_964_571,
    opset: 12,
    features: 1280,
    preprocess: ZOO_IMAGENET,
    cut: 'the GlobalAveragePool output before the classifier (1280)',
  }),
  zooEntry('resnet18-v1', {
    file: 'resnet/model/resnet18-v1-7.onnx',
    description: 'ResNet-18 v1 (ONNX Model Zoo, MXNet Gluon), downloaded directly',
    sha256: '4e8f8653e7a2222b3904cc3fe8e304cd8b339ce1d05fd24688162f86fb6df52c',
    size: 46_820_737,
    opset: 7,
    features: 512,
    preprocess: ZOO_IMAGENET,
    cut: 'the Flatten after the global pool, before the Gemm resnetv15_dense0 (512)',
  }),
  zooEntry('resnet50-v1', {
    file: 'resnet/model/resnet50-v1-7.onnx',
    description: 'ResNet-50 v1 (ONNX Model Zoo, MXNet Gluon), downloaded directly',
    sha256: 'af16a04a6ec48ac494065d4439fe9dea590d337b9ca6dc328160ccf04a217b9c',
    size: 102_583_340,
    opset: 7,
    features: 2048,
    preprocess: ZOO_IMAGENET,
    cut: 'the Flatten after the global pool, before the Gemm resnetv17_dense0 (2048)',
  }),
  zooEntry('efficientnet-lite4', {
    file: 'efficientnet-lite4/model/efficientnet-lite4-11.onnx',
    description: 'EfficientNet-Lite4 (ONNX Model Zoo, converted from TensorFlow), downloaded directly',
    sha256: 'd111689907c06eea7c82e4833ddef758da6453b9d4cf60b7e99ca05c7cbd9c12',
    size: 51_946_641,
    opset: 11,
    features: 1280,
    // the zoo README: aspect-preserving resize to 224/0.875, centre crop 224, (pixel - 127) / 128, NHWC, RGB
    preprocess: {
      size: 224,
      resize: 'crop',
      cropFraction: 0.875,
      mean: [127, 127, 127],
      std: [128, 128, 128],
      scale: 1,
      layout: 'NHWC',
      interpolation: 'bilinear',
    },
    cut: 'the pooled features before the final MatMul/Softmax (1280)',
    notes: ['Input images:0 is [1, 224, 224, 3]: the batch axis is fixed to 1 in the file and the output is Softmax probabilities.'],
  }),
  torchvisionEntry('resnet18', {
    description: 'ResNet-18, the seed example backbone',
    weights: 'IMAGENET1K_V1',
    features: 512,
    parameters: 11_689_512,
    resize: 256,
    links: [ONNX_ZOO],
  }),
  torchvisionEntry('resnet50', {
    description: 'ResNet-50',
    weights: 'IMAGENET1K_V2',
    features: 2048,
    parameters: 25_557_032,
    resize: 232,
    links: [ONNX_ZOO],
  }),
  torchvisionEntry('mobilenet_v2', {
    description: 'MobileNetV2 (inverted residuals, ReLU6)',
    weights: 'IMAGENET1K_V2',
    features: 1280,
    parameters: 3_504_872,
    resize: 232,
    links: [ONNX_ZOO],
  }),
  torchvisionEntry('mobilenet_v3_small', {
    description: 'MobileNetV3-Small (hard-swish, squeeze-excitation)',
    weights: 'IMAGENET1K_V1',
    features: 576,
    parameters: 2_542_856,
    resize: 256,
  }),
  torchvisionEntry('efficientnet_b0', {
    description: 'EfficientNet-B0 (SiLU, squeeze-excitation)',
    weights: 'IMAGENET1K_V1',
    features: 1280,
    parameters: 5_288_548,
    resize: 256,
    interpolation: 'bicubic',
  }),
  timmEntry('resnet18.a1_in1k', { description: 'ResNet-18, timm "ResNet strikes back" A1 recipe', features: 512, parameters: 11_689_512, cropFraction: 0.95 }),
  timmEntry('mobilenetv2_100.ra_in1k', { description: 'MobileNetV2 1.0, timm RandAugment recipe', features: 1280, parameters: 3_504_872, cropFraction: 0.875 }),
  timmEntry('mobilenetv3_small_100.lamb_in1k', {
    description: 'MobileNetV3-Small 1.0, timm LAMB recipe',
    features: 1024,
    parameters: 2_542_856,
    cropFraction: 0.875,
  }),
  timmEntry('efficientnet_b0.ra_in1k', { description: 'EfficientNet-B0, timm RandAugment recipe', features: 1280, parameters: 5_288_548, cropFraction: 0.875 }),
  nsfwjsEntry('MobileNetV2', { description: 'nsfwjs MobileNetV2 (Keras layers model)', size: 224, features: 1280 }),
  nsfwjsEntry('MobileNetV2Mid', { description: 'nsfwjs MobileNetV2 1.4 (TF-Hub graph model)', size: 224, features: 1792 }),
  nsfwjsEntry('InceptionV3', { description: 'nsfwjs InceptionV3 (Keras layers model)', size: 299, features: 2048 }),
];

const linkSchema = z.strictObject({ title: z.string(), url: z.string().url() });

/** The zod schema of a registry entry in a `GRAFT_REGISTRY` file. */
export const modelEntrySchema = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._:+-]*$/, 'use letters, digits and . _ : + - (e.g. "my-resnet" or "team:resnet18")'),
  aliases: z.array(z.string()).optional(),
  family: z.enum(['torchvision', 'timm', 'nsfwjs', 'onnx']).default('onnx'),
  description: z.string().default(''),
  dataset: z.string().optional(),
  classes: z.number().int().positive().optional(),
  features: z.number().int().positive().optional(),
  parameters: z.number().int().nonnegative().optional(),
  preprocess: preprocessSchema,
  download: z
    .strictObject({
      url: z.string().regex(/^https?:\/\//i, 'must be an http:// or https:// URL'),
      sha256: z
        .string()
        .regex(/^[0-9a-fA-F]{64}$/, 'must be 64 hexadecimal digits')
        .transform((s) => s.toLowerCase())
        .optional(),
      size: z.number().int().positive().optional(),
    })
    .optional(),
  export: z.string().optional(),
  nsfwjs: z.enum(Object.keys(NSFWJS_MODELS) as [NsfwjsModelName, ...NsfwjsModelName[]]).optional(),
  links: z.array(linkSchema).optional(),
  notes: z.array(z.string()).optional(),
  license: z.string().optional(),
});

const registryFileSchema = z.union([z.array(modelEntrySchema), z.strictObject({ models: z.array(modelEntrySchema) })]);

/** The registry files named by `GRAFT_REGISTRY` (several separated by the platform's path delimiter, `:` on Linux). */
export function registryFiles(env: NodeJS.ProcessEnv = process.env): string[] {
  return (env.GRAFT_REGISTRY ?? '')
    .split(path.delimiter)
    .map((s) => s.trim())
    .filter(Boolean);
}

/**
 * Reads one registry file: `{"models": [entry, ...]}` or a bare array of entries.
 * @throws naming the file and every invalid field.
 */
export function readRegistryFile(file: string): ModelEntry[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`${describeFsError('read model registry', file, e)} (named by GRAFT_REGISTRY)`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new Error(`Model registry ${file} (GRAFT_REGISTRY) is not valid JSON: ${(e as Error).message}. Fix the file or unset GRAFT_REGISTRY.`);
  }
  const r = registryFileSchema.safeParse(json);
  if (!r.success) {
    const issues = r.error.issues.map((i) => `${i.path.length ? i.path.join('.') : '(top level)'}: ${i.message}`);
    throw new Error(
      `Invalid model registry ${file} (GRAFT_REGISTRY): ${issues.join('; ')}. Expected {"models": [{"name", "preprocess": {"size": 224, ...}, "download": {"url", "sha256", "size"}}]}; see docs/cli/models.md.`,
    );
  }
  return (Array.isArray(r.data) ? r.data : r.data.models) as ModelEntry[];
}

/**
 * The built-in entries plus those of the `GRAFT_REGISTRY` files, in that order; a later entry with the same
 * name (case-insensitive) replaces the earlier one in place.
 */
export function loadRegistry(env: NodeJS.ProcessEnv = process.env): ModelEntry[] {
  const out: ModelEntry[] = [...BUILTIN_MODELS];
  for (const file of registryFiles(env))
    for (const e of readRegistryFile(file)) {
      const at = out.findIndex((x) => x.name.toLowerCase() === e.name.toLowerCase());
      if (at >= 0) out[at] = e;
      else out.push(e);
    }
  return out;
}

/**
 * The entry called `name` (or with that alias), case-insensitively.
 * @throws listing the known names when there is none.
 */
export function findModel(name: string, registry: readonly ModelEntry[] = loadRegistry()): ModelEntry {
  const key = name.toLowerCase();
  const hit = registry.find((e) => e.name.toLowerCase() === key) ?? registry.find((e) => (e.aliases ?? []).some((a) => a.toLowerCase() === key));
  if (hit) return hit;
  const base = (n: string) => n.toLowerCase().replace(/^\w+:/, '');
  const near = registry.filter(
    (e) =>
      base(e.name).includes(base(key)) ||
      Math.min(editDistance(base(e.name), base(key)), editDistance(base(e.name).slice(0, base(key).length), base(key))) <= 2,
  );
  throw new Error(
    `Unknown model "${name}".${near.length ? ` Did you mean ${near.map((e) => e.name).join(', ')}?` : ''} Known models: ${registry.map((e) => e.name).join(', ')}. ` +
      'List them with `graft models`, or add your own entry in a JSON file named by GRAFT_REGISTRY (see docs/cli/models.md).',
  );
}

/** An entry's preprocessing, validated with every default filled in. */
export function entryPreprocess(entry: ModelEntry): PreprocessConfig {
  return parsePreprocessConfig(entry.preprocess, `preprocessing of registry entry "${entry.name}"`);
}

/** How the weights of `entry` are obtained: `download`, `nsfwjs` (converted locally) or `export` (a command to run). */
export function entrySource(entry: ModelEntry): 'download' | 'nsfwjs' | 'export' | 'none' {
  if (entry.nsfwjs) return 'nsfwjs';
  if (entry.download) return 'download';
  if (entry.export) return 'export';
  return 'none';
}
