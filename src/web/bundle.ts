/**
 * Opening a web bundle in the page, shared by the image and the text classifier: model.json fetched and checked,
 * onnxruntime-web imported from the bundle's `ort/` folder (wasm backend), and a session on the model. Browser-only
 * code: no Node built-ins, no packages.
 */
import type * as Ort from 'onnxruntime-web';

/** What the classifiers use of onnxruntime-web's module (structural, so the shipped declarations name no package). */
export interface WebOrt {
  Tensor: new (type: 'float32' | 'int64', data: Float32Array | BigInt64Array, dims: readonly number[]) => unknown;
}

/** What the classifiers use of an onnxruntime-web session. */
export interface WebSession {
  run(feeds: Record<string, unknown>): Promise<Record<string, { data: unknown } | undefined>>;
}

/** Options of a classifier's `load`. */
export interface LoadOptions {
  /** onnxruntime-web wasm threads (default 1: no cross-origin isolation needed). */
  numThreads?: number;
}

/** What every bundle's model.json holds (see docs/formats.md, "Web bundle"). */
export interface BundleMetaBase {
  format: 'graft-web';
  version: 1;
  /** "text" for a text model's bundle; absent for an image bundle. */
  kind?: 'text';
  /** The ONNX file, relative to model.json. */
  model: string;
  /** onnxruntime-web's ES module and the folder of its .wasm files, relative to model.json. */
  ort: { module: string; wasmPaths: string };
}

/** An opened bundle: its root URL, model.json, onnxruntime-web and a session on the model. */
export interface OpenedBundle<M extends BundleMetaBase> {
  root: URL;
  meta: M;
  ort: WebOrt;
  session: WebSession;
}

/**
 * Opens the bundle at `base` (the folder holding model.json) whose kind is `kind` ('image' or 'text').
 * @throws naming the file and what to do when model.json, onnxruntime-web or the model cannot be loaded, or the
 *   bundle is of the other kind.
 */
export async function openBundle<M extends BundleMetaBase>(base: string | URL, kind: 'image' | 'text', opts: LoadOptions = {}): Promise<OpenedBundle<M>> {
  const root = new URL(base, globalThis.location?.href);
  const metaUrl = new URL('model.json', root);
  const res = await fetch(metaUrl);
  if (!res.ok)
    throw new Error(`graft web: cannot load ${metaUrl} (HTTP ${res.status}); serve the folder written by \`graft export --web\` and load from its root.`);
  const meta = (await res.json()) as M;
  if (meta.format !== 'graft-web' || meta.version !== 1)
    throw new Error(
      `graft web: ${metaUrl} is not a graft web bundle (format "${meta.format}", version ${meta.version}); re-export it with \`graft export --web\`.`,
    );
  const got = meta.kind === 'text' ? 'text' : 'image';
  if (got !== kind)
    throw new Error(
      `graft web: ${metaUrl} is the bundle of ${got === 'text' ? 'a text' : 'an image'} model; load it with ${got === 'text' ? 'WebTextClassifier' : 'WebClassifier'}.`,
    );
  const ort = (await import(new URL(meta.ort.module, root).href)) as typeof Ort;
  ort.env.wasm.wasmPaths = new URL(meta.ort.wasmPaths, root).href;
  ort.env.wasm.numThreads = opts.numThreads ?? 1;
  const session = await ort.InferenceSession.create(new URL(meta.model, root).href, { executionProviders: ['wasm'] });
  return { root, meta, ort: ort as unknown as WebOrt, session: session as unknown as WebSession };
}
