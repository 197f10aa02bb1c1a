/**
 * Text data (src/data/text.ts): CSV, TSV, JSONL and .txt folders read into texts, labels and file:line origins;
 * every kind of bad input (wrong encoding, missing column, empty text, huge text, unknown label, repeats across
 * splits) gives one clear error or warning that names the place.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { splitTrainVal } from '../../src/data/split.js';
import { decodeUtf8, HUGE_TEXT_CHARS, loadTextData, readTextInputs, textLeakWarnings } from '../../src/data/text.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-text-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

function write(name: string, content: string | Buffer): string {
  const f = path.join(tmp, name);
  fs.mkdirSync(path.dirname(f), { recursive: true });
  fs.writeFileSync(f, content);
  return f;
}

test('a CSV with quoted commas, quotes and line breaks gives each text, its label and its file:line', async () => {
  const f = write('a.csv', 'id,text,label\n1,"hello, world",greet\n2,"she said ""hi""\nand left",story\n3,plain,greet\n');
  const d = await loadTextData(f);
  assert.deepEqual(d.texts, ['hello, world', 'she said "hi"\nand left', 'plain']);
  assert.deepEqual(d.classes, ['greet', 'story']);
  assert.deepEqual(Array.from(d.labels!), [0, 1, 0]);
  assert.deepEqual(d.origins, [`${f}:2`, `${f}:3`, `${f}:5`]);
});

test('TSV, JSONL and named columns read the same texts', async () => {
  const tsv = write('a.tsv', 'body\tcat\nfirst, with comma\tx\nsecond\ty\n');
  const t = await loadTextData(tsv, { textColumn: 'body', labelColumn: 'cat' });
  assert.deepEqual(t.texts, ['first, with comma', 'second']);
  const jsonl = write('a.jsonl', '{"text": "one", "label": "x"}\n\n{"text": "two\\nlines", "label": 3}\n');
  const j = await loadTextData(jsonl);
  assert.deepEqual(j.texts, ['one', 'two\nlines']);
  assert.deepEqual(j.classes, ['3', 'x']);
  assert.deepEqual(j.origins, [`${jsonl}:1`, `${jsonl}:3`]);
});

test('a folder of .txt files per class: one text per file, other files skipped with a warning', async () => {
  write('folder/pos/a.txt', 'good film');
  write('folder/pos/b.txt', 'great');
  write('folder/neg/c.txt', 'bad film');
  write('folder/neg/notes.md', 'ignored');
  const warnings: string[] = [];
  const d = await loadTextData(path.join(tmp, 'folder'), { onWarning: (m) => warnings.push(m) });
  assert.deepEqual(d.classes, ['neg', 'pos']);
  assert.deepEqual(d.texts, ['bad film', 'good film', 'great']);
  assert.deepEqual(Array.from(d.labels!), [0, 1, 1]);
  assert.match(warnings.join('\n'), /notes\.md/);
});

test('bytes that are not UTF-8 are one error naming file:line and the byte offset', async () => {
  const bytes = Buffer.concat([Buffer.from('text,label\nok,a\ncaf'), Buffer.from([0xe9]), Buffer.from(',b\n')]);
  const f = write('latin1.csv', bytes);
  await assert.rejects(loadTextData(f), (e: Error) => {
    assert.match(e.message, new RegExp(`${f.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:3: the bytes at offset 19 are not valid UTF-8`));
    assert.match(e.message, /iconv/);
    return true;
  });
  assert.throws(() => decodeUtf8(Buffer.from([0x61, 0x0a, 0x62, 0xff]), 'x.txt'), /x\.txt:2: the bytes at offset 3/);
  assert.equal(decodeUtf8(Buffer.from('\uFEFFhé', 'utf8'), 'bom.txt'), 'hé');
});

test('a missing text or label column names the file, the header and the fix', async () => {
  const f = write('nocol.csv', 'body,label\nx,a\n');
  await assert.rejects(loadTextData(f), /nocol\.csv:1: the header \(body,label\) has no "text" column.*--text-column/);
  const g = write('nolabel.csv', 'text\nx\ny\n');
  await assert.rejects(loadTextData(g), /nolabel\.csv:1: no "label" column/);
  const unl = await loadTextData(g, { labelled: false });
  assert.equal(unl.labels, undefined);
  assert.deepEqual(unl.texts, ['x', 'y']);
  const j = write('nokey.jsonl', '{"body": "x", "label": "a"}\n');
  await assert.rejects(loadTextData(j), /nokey\.jsonl:1: no string "text" field \(keys: body, label\)/);
});

test('a row with the wrong number of fields, an empty label or an unknown label is an error naming its line', async () => {
  await assert.rejects(loadTextData(write('fields.csv', 'text,label\na,b\nc,d,e\n')), /fields\.csv:3: 3 fields but the header has 2/);
  await assert.rejects(loadTextData(write('emptylabel.csv', 'text,label\na,b\nc,\n')), /emptylabel\.csv:3: empty label/);
  await assert.rejects(loadTextData(write('unknown.csv', 'text,label\na,b\nc,z\n'), { classes: ['b', 'c'] }), /unknown\.csv:3: unknown label "z"/);
});

test('empty texts are skipped with one warning listing their lines (an error with strict); the rest is kept', async () => {
  const f = write('empty.csv', 'text,label\na,x\n"  ",y\nb,y\n"",x\nc,x\n');
  const warnings: string[] = [];
  const d = await loadTextData(f, { onWarning: (m) => warnings.push(m) });
  assert.deepEqual(d.texts, ['a', 'b', 'c']);
  assert.equal(warnings.length, 1);
  assert.match(warnings[0]!, /2 empty text\(s\) \(.*empty\.csv:3, .*empty\.csv:5\)/);
  await assert.rejects(loadTextData(f, { strict: true }), /2 empty text\(s\).*remove those lines/);
});

test('a huge text is kept, with a warning naming its line and length', async () => {
  const big = 'word '.repeat(HUGE_TEXT_CHARS / 5 + 10);
  const f = write('huge.csv', `text,label\nsmall,a\n${big},b\n`);
  const warnings: string[] = [];
  const d = await loadTextData(f, { onWarning: (m) => warnings.push(m) });
  assert.equal(d.texts[1], big);
  assert.match(warnings.join('\n'), new RegExp(`huge\\.csv:3: ${big.length} chars.*first tokens`));
});

test('the same text with two labels, and texts shared between splits, are warned about', async () => {
  const f = write('dup.csv', 'text,label\nsame,a\nother,b\nsame,b\n');
  const warnings: string[] = [];
  await loadTextData(f, { onWarning: (m) => warnings.push(m) });
  assert.match(warnings.join('\n'), /dup\.csv:4 \("b"\) repeats .*dup\.csv:2 \("a"\)/);
  const w = textLeakWarnings([
    { name: 'train', data: { texts: ['a', 'b', 'c'], origins: ['t:1', 't:2', 't:3'] } },
    { name: 'val', data: { texts: ['c', 'd'], origins: ['v:1', 'v:2'] } },
  ]);
  assert.equal(w.length, 1);
  assert.match(w[0]!, /1 text\(s\) of val also appear in train \(v:1 = t:3\)/);
  assert.deepEqual(
    textLeakWarnings([
      { name: 'train', data: { texts: ['a'], origins: ['t:1'] } },
      { name: 'val', data: { texts: ['b'], origins: ['v:1'] } },
    ]),
    [],
  );
});

test('text labels split stratified and seeded with the one splitter, and --limit keeps the class shares', async () => {
  const rows = Array.from({ length: 40 }, (_, i) => `t${i},${i % 4 === 0 ? 'rare' : 'common'}`);
  const d = await loadTextData(write('split.csv', `text,label\n${rows.join('\n')}\n`));
  const s = splitTrainVal(d.labels!, { val: 0.2, seed: 1, limit: 20, classes: d.classes });
  const count = (idx: Int32Array, c: number) => Array.from(idx).filter((i) => d.labels![i] === c).length;
  assert.equal(s.train.length + s.val.length, 20);
  assert.equal(count(s.train, 1) + count(s.val, 1), 5); // rare: a quarter of 20
  assert.ok(count(s.val, 1) >= 1);
  assert.deepEqual(splitTrainVal(d.labels!, { val: 0.2, seed: 1, limit: 20 }), s);
});

test('predict inputs: texts, .txt files, tables and folders in order; a missing file name is an error', async () => {
  const txt = write('in/one.txt', 'from a file');
  write('in/sub/two.txt', 'nested');
  const table = write('in.csv', 'text\nrow one\nrow two\n');
  const r = await readTextInputs(['literal text', txt, table, path.join(tmp, 'in')]);
  assert.deepEqual(r.texts, ['literal text', 'from a file', 'row one', 'row two', 'from a file', 'nested']);
  assert.equal(r.names[2], `${table}:2`);
  await assert.rejects(readTextInputs(['missing.txt']), /missing\.txt does not exist/);
});
