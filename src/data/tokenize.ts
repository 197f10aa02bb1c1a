/**
 * Text → token ids on Node: the browser-safe core (data/text-tokens.ts: specs, graft's word rule, hashed and
 * vocabulary tokenizers, padding) with the Hugging Face tokenizers library plugged in, and the
 * `<model>.tokenizer.json` file beside a text model.
 */
import fs from 'node:fs';
import { Tokenizer } from '@huggingface/tokenizers';
import { atomicWrite } from '../util/atomic-write.js';
import { makeTokenizer as makeCoreTokenizer, type TextTokenizer, type TokenizerSpec } from './text-tokens.js';

export {
  fnv1a,
  type HashedWordsSpec,
  type HfTokenizerSpec,
  PAD_ID,
  padTokenIds,
  type TextTokenizer,
  type TokenBatch,
  type TokenizerSpec,
  UNK_ID,
  type VocabWordsSpec,
  wordTokens,
} from './text-tokens.js';

/**
 * The tokenizer a spec describes (a "hf" spec runs on `@huggingface/tokenizers`).
 * @throws naming the field when the spec is malformed (e.g. a damaged `<model>.tokenizer.json`).
 */
export function makeTokenizer(spec: TokenizerSpec, where = 'tokenizer'): TextTokenizer {
  return makeCoreTokenizer(spec, where, (json, config) => new Tokenizer(json, config));
}

/** The tokenizer file beside a text model: `model.onnx` → `model.tokenizer.json`. */
export function tokenizerPath(modelFile: string): string {
  return `${modelFile.replace(/\.onnx$/i, '')}.tokenizer.json`;
}

/** Writes the tokenizer of a text model beside it (atomically). */
export function writeTokenizerFile(modelFile: string, spec: TokenizerSpec): string {
  const file = tokenizerPath(modelFile);
  atomicWrite(file, `${JSON.stringify(spec)}\n`);
  return file;
}

/**
 * Reads the tokenizer beside a text model, or undefined when there is none (an image model).
 * @throws naming the file when it is not valid JSON or not a tokenizer graft knows.
 */
export function readTokenizerFile(modelFile: string): TokenizerSpec | undefined {
  const file = tokenizerPath(modelFile);
  if (!fs.existsSync(file)) return undefined;
  let spec: unknown;
  try {
    spec = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`Cannot read the tokenizer ${file}: ${(e as Error).message}. Restore it from the run folder the model came from.`);
  }
  makeTokenizer(spec as TokenizerSpec, file); // validates
  return spec as TokenizerSpec;
}
