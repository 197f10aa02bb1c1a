/**
 * ONNX ModelProto ⇄ graft Model, through the maintained protobuf binding (onnx-proto / protobufjs).
 * Reads initializers (raw, typed or external data), opsets, metadata_props; validates on load so a
 * truncated or corrupt file gives one clear error instead of a partial model.
 */
import fs from 'node:fs';
import path from 'node:path';
import { MAX_OPSET, MIN_OPSET, Model } from '../ir/model.js';
import { atomicWrite, syncDir, tempPathFor } from '../util/atomic-write.js';
import { describeFsError } from '../util/fs-errors.js';
import { graftVersion } from '../util/version.js';
import { graphFromProto, graphToProto } from './proto-graph.js';
import { type ExternalDataOptions, type ExternalSink, num, onnx } from './tensor-proto.js';
import { MIN_UPGRADE_OPSET, UPGRADE_TARGET_OPSET, upgradeToOpset13 } from './upgrade.js';
import { validateModel } from './validate.js';

/** ModelProto header fields that the Model class does not hold; kept per loaded model so a re-save preserves them. */
export interface ModelHeader {
  producerVersion: string;
  domain: string;
  modelVersion: number;
  docString: string;
}
const headers = new WeakMap<Model, ModelHeader>();

/** Header fields (producer_version, domain, model_version, doc_string) of a model that was decoded from a file, if any. */
export function modelHeader(model: Model): ModelHeader | undefined {
  return headers.get(model);
}

/** Decodes ONNX bytes into a validated Model. Throws one error that names `opts.modelPath` for corrupt or truncated input. */
export function decodeModel(bytes: Uint8Array, opts: ExternalDataOptions = {}): Model {
  const where = opts.modelPath ?? 'ONNX model';
  if (bytes.length === 0) throw new Error(`${where} is empty (0 bytes); the export or download did not finish. Re-export or re-download it.`);
  let proto: InstanceType<typeof onnx.ModelProto>;
  try {
    proto = onnx.ModelProto.decode(bytes);
  } catch (e) {
    throw new Error(
      `${where} is not a valid ONNX file (${(e as Error).message}); ${sniff(bytes) ?? 'it is truncated or corrupt. Re-export or re-download it.'}`,
    );
  }
  try {
    return modelFromProto(proto, opts, where);
  } catch (e) {
    const msg = (e as Error).message;
    const hint = sniff(bytes);
    const named = msg.startsWith(where) ? msg : `${where}: ${msg}`;
    throw new Error(hint ? `${where} is not an ONNX model; ${hint}` : named, { cause: e });
  }
}

function modelFromProto(proto: InstanceType<typeof onnx.ModelProto>, opts: ExternalDataOptions, where: string): Model {
  if (!proto.graph) throw new Error(`${where} has no graph; it is not an ONNX model or it is truncated. Re-export or re-download it.`);
  let opset = 0;
  const others: { domain: string; version: number }[] = [];
  for (const o of proto.opsetImport ?? []) {
    if (!o.domain || o.domain === 'ai.onnx') opset = num(o.version);
    else others.push({ domain: o.domain, version: num(o.version) });
  }
  if (!opset)
    throw new Error(
      `${where} declares no default-domain (ai.onnx) opset; the file is truncated or malformed. Re-download it or re-export it with opset ${MIN_OPSET}–${MAX_OPSET}.`,
    );
  if (opset < MIN_UPGRADE_OPSET || opset > MAX_OPSET)
    throw new Error(
      `${where} uses opset ${opset}; graft supports opsets ${MIN_OPSET}–${MAX_OPSET} (and reads ${MIN_UPGRADE_OPSET}–${MIN_OPSET - 1} as ${UPGRADE_TARGET_OPSET}). Re-export with e.g. torch.onnx.export(..., opset_version=17) or convert it with onnx.version_converter.`,
    );
  const graph = graphFromProto(proto.graph, opts);
  if (opset < MIN_OPSET) upgradeToOpset13(graph, opset, where); // the ONNX Model Zoo's opsets 7–12
  const model = new Model(graph, Math.max(opset, UPGRADE_TARGET_OPSET));
  model.otherOpsets = others;
  model.irVersion = num(proto.irVersion) || 8;
  model.producer = proto.producerName || '';
  for (const kv of proto.metadataProps ?? []) model.metadata[kv.key ?? ''] = kv.value ?? '';
  headers.set(model, {
    producerVersion: proto.producerVersion || '',
    domain: proto.domain || '',
    modelVersion: num(proto.modelVersion),
    docString: proto.docString || '',
  });
  validateModel(model, where);
  return model;
}

/** Recognizes common files that are not ONNX and says what to do; undefined if nothing matches. */
function sniff(b: Uint8Array): string | undefined {
  const head = Buffer.from(b.subarray(0, 64)).toString('latin1');
  if (head.startsWith('version https://git-lfs')) return 'it is a Git LFS pointer, not the model itself. Run `git lfs pull` to fetch the real file.';
  if (head.startsWith('PK\x03\x04')) return 'it is a zip archive (e.g. a PyTorch .pt/.pth checkpoint). Export the network with torch.onnx.export first.';
  if (head.startsWith('\x1f\x8b')) return 'it is gzip-compressed. Decompress it (gunzip) first.';
  if (/^\s*</.test(head)) return 'it is an HTML/XML page (often a failed download). Download the .onnx file again.';
  if (/^\s*[{[]/.test(head)) return 'it is a JSON/text file. Pass the .onnx model file instead.';
  if (head.slice(4, 8) === 'ORTM') return 'it is in ONNX Runtime\'s ".ort" format. Use the original .onnx file.';
  return undefined;
}

/** Reads and validates an .onnx file (external data is resolved beside it). Errors name the file and say how to fix it. */
export function loadModel(file: string): Model {
  let bytes: Buffer;
  try {
    if (fs.statSync(file).isDirectory()) {
      const onnxFiles = fs.readdirSync(file).filter((f) => f.endsWith('.onnx'));
      const hint = onnxFiles.length ? ` It contains: ${onnxFiles.slice(0, 5).join(', ')}.` : ' It contains no .onnx file.';
      throw new Error(`Cannot read ONNX model ${file}: it is a folder, not a file. Pass the path of the .onnx file inside it.${hint}`);
    }
    bytes = fs.readFileSync(file);
  } catch (e) {
    if (e instanceof Error && e.message.startsWith('Cannot read')) throw e;
    throw new Error(describeFsError('read ONNX model', file, e));
  }
  return decodeModel(bytes, { baseDir: path.dirname(path.resolve(file)), modelPath: file });
}

/** Options for writing a model. */
export interface SaveOptions {
  /** Store initializers ≥ 1 KiB in `<file>.data` (required above 2 GB). Default 'auto': only when the weights exceed 1.8 GB. */
  externalData?: boolean | 'auto';
}

/** Encodes a Model to ONNX bytes (all weights inline). */
export function encodeModel(model: Model): Uint8Array {
  return encodeProto(model);
}

/**
 * Serializes top-level fields in an order chosen for truncation safety: header, metadata, graph, and the
 * opset imports last. Nested messages carry their length, so a cut inside them fails to decode; a cut
 * between top-level fields would otherwise decode silently, but here it always loses the default-domain
 * opset, which {@link decodeModel} rejects. (Protobuf readers accept fields in any order.)
 */
function encodeProto(model: Model, sink?: ExternalSink): Uint8Array {
  const h = headers.get(model);
  const M = onnx.ModelProto;
  const parts = [
    M.encode({
      irVersion: model.irVersion,
      producerName: model.producer,
      producerVersion: h?.producerVersion ?? (model.producer === 'graft' ? graftVersion() : ''),
      domain: h?.domain ?? '',
      modelVersion: h?.modelVersion ?? 0,
      docString: h?.docString ?? '',
      metadataProps: Object.entries(model.metadata).map(([key, value]) => ({ key, value })),
    }).finish(),
    M.encode({ graph: graphToProto(model.graph, sink) }).finish(),
    M.encode({ opsetImport: [...model.otherOpsets.map((o) => ({ domain: o.domain, version: o.version })), { domain: '', version: model.opset }] }).finish(),
  ];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 * Writes a Model to `file` atomically (temp file + fsync + rename), with external data in `<file>.data`
 * when asked or needed. On failure (e.g. disk full) any previous file is left unchanged.
 */
export function saveModel(model: Model, file: string, opts: SaveOptions = {}): void {
  let weightBytes = 0;
  for (const t of model.graph.initializers.values()) weightBytes += t.data.byteLength;
  const external = opts.externalData === true || ((opts.externalData ?? 'auto') === 'auto' && weightBytes > 1.8e9);
  if (!external) {
    atomicWrite(file, encodeProto(model));
    return;
  }
  const dataFile = `${file}.data`;
  const tmp = tempPathFor(dataFile);
  const sink: ExternalSink = { fd: -1, location: path.basename(dataFile), offset: 0 };
  let bytes: Uint8Array;
  try {
    fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
    sink.fd = fs.openSync(tmp, 'w');
    bytes = encodeProto(model, sink);
    fs.fsyncSync(sink.fd);
    fs.closeSync(sink.fd);
    sink.fd = -1;
    if (sink.offset > 0) fs.renameSync(tmp, dataFile);
    else fs.rmSync(tmp, { force: true });
  } catch (e) {
    if (sink.fd >= 0) fs.closeSync(sink.fd);
    fs.rmSync(tmp, { force: true });
    throw new Error(describeFsError('write ONNX weights', dataFile, e, 'The previous model file is unchanged.'));
  }
  syncDir(path.dirname(path.resolve(file)));
  atomicWrite(file, bytes);
}
