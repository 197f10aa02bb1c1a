import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import sharp from 'sharp';
import { ArrayDataset, ImageFolderDataset, ManifestDataset, SubsetDataset, UnlabelledFolder } from '../../src/data/dataset.js';
import { parseCsv } from '../../src/data/manifest.js';

const tmp = await mkdtemp(join(tmpdir(), 'graft-ds-'));
after(() => rm(tmp, { recursive: true, force: true }));

const solid = (r: number, g: number, b: number) => sharp({ create: { width: 8, height: 6, channels: 3, background: { r, g, b } } });

/** root/cat/{a.png, rot.jpg, sub/gray.png}, root/dog/{rgba.png, bad.jpg, notes.txt, .DS_Store} */
async function makeFolder(root: string): Promise<void> {
  await mkdir(join(root, 'cat', 'sub'), { recursive: true });
  await mkdir(join(root, 'dog'), { recursive: true });
  await solid(255, 0, 0)
    .png()
    .toFile(join(root, 'cat', 'a.png'));
  await solid(0, 255, 0)
    .jpeg()
    .withMetadata({ orientation: 6 })
    .toFile(join(root, 'cat', 'rot.jpg'));
  await sharp(Buffer.alloc(48, 90), { raw: { width: 8, height: 6, channels: 1 } })
    .toColourspace('b-w')
    .png()
    .toFile(join(root, 'cat', 'sub', 'gray.png'));
  await sharp({ create: { width: 8, height: 6, channels: 4, background: { r: 0, g: 0, b: 255, alpha: 0.5 } } })
    .png()
    .toFile(join(root, 'dog', 'rgba.png'));
  await writeFile(join(root, 'dog', 'bad.jpg'), 'this is not a jpeg');
  await writeFile(join(root, 'dog', 'notes.txt'), 'hello');
  await writeFile(join(root, 'dog', '.DS_Store'), 'x');
}

test('ImageFolderDataset: sorted classes, recursive, skips non-images with a warning', async () => {
  const root = join(tmp, 'folder');
  await makeFolder(root);
  const warnings: string[] = [];
  const ds = await ImageFolderDataset.load(root, { onWarning: (m) => warnings.push(m) });
  assert.deepEqual(ds.classes, ['cat', 'dog']);
  assert.equal(ds.length, 5);
  assert.deepEqual(
    Array.from({ length: ds.length }, (_, i) => [ds.item(i).path!.slice(root.length + 1), ds.item(i).label]),
    [
      ['cat/a.png', 0],
      ['cat/rot.jpg', 0],
      ['cat/sub/gray.png', 0],
      ['dog/bad.jpg', 1],
      ['dog/rgba.png', 1],
    ],
  );
  assert.deepEqual(Array.from(ds.labels()!), [0, 0, 0, 1, 1]);
  assert.equal(warnings.length, 1);
  assert.match(warnings[0]!, /notes\.txt/);
  assert.doesNotMatch(warnings[0]!, /DS_Store/);
  assert.match(ds.describe(), /5 images, 2 classes \(cat: 3, dog: 2\)/);
  const sub = new SubsetDataset(ds, Int32Array.from([4, 0]));
  assert.deepEqual(sub.item(0), { index: 0, path: join(root, 'dog', 'rgba.png'), label: 1 });
  assert.deepEqual(Array.from(sub.labels()!), [1, 0]);
  assert.throws(() => ds.item(5), /out of range/);
});

test('ImageFolderDataset errors: empty class, single class, missing root, unknown class', async () => {
  const root = join(tmp, 'bad-folder');
  await makeFolder(root);
  await mkdir(join(root, 'empty'));
  await assert.rejects(
    ImageFolderDataset.load(root, { onWarning: () => {} }),
    (e: Error) => e.message.includes(join(root, 'empty')) && /no images/.test(e.message),
  );
  const one = join(tmp, 'one');
  await mkdir(join(one, 'only'), { recursive: true });
  await solid(1, 2, 3)
    .png()
    .toFile(join(one, 'only', 'x.png'));
  await assert.rejects(ImageFolderDataset.load(one), /single class folder \(only\).*at least two classes/);
  // a validation folder with a fixed class list may hold one class
  const v = await ImageFolderDataset.load(one, { classes: ['other', 'only'] });
  assert.deepEqual(Array.from(v.labels()!), [1]);
  await assert.rejects(ImageFolderDataset.load(one, { classes: ['a', 'b'] }), /only is not one of the 2 known classes/);
  await assert.rejects(ImageFolderDataset.load(join(tmp, 'missing')), /Cannot read image folder .*missing \(ENOENT\); check the path/);
  const flat = join(tmp, 'flat');
  await mkdir(flat);
  await solid(1, 2, 3).png().toFile(join(flat, 'x.png'));
  await assert.rejects(ImageFolderDataset.load(flat, { onWarning: () => {} }), /no class sub-folders; lay it out as/);
});

test('UnlabelledFolder: recursive, errors when empty', async () => {
  const root = join(tmp, 'folder');
  const u = await UnlabelledFolder.load(root, { onWarning: () => {} });
  assert.equal(u.length, 5);
  assert.equal(u.labels(), undefined);
  assert.equal(u.item(0).label, undefined);
  const empty = join(tmp, 'empty-target');
  await mkdir(join(empty, 'deep'), { recursive: true });
  await writeFile(join(empty, 'deep', 'readme.md'), '#');
  await assert.rejects(UnlabelledFolder.load(empty, { onWarning: () => {} }), (e: Error) => e.message.includes(empty) && /contains no images/.test(e.message));
});

test('ManifestDataset: CSV and JSONL, relative paths, class list', async () => {
  const root = join(tmp, 'folder');
  await writeFile(join(root, 'm.csv'), 'path,label,note\ncat/a.png,cat,"x, y"\r\n"dog/rgba.png",dog,\n\n');
  const m = await ManifestDataset.load(join(root, 'm.csv'));
  assert.deepEqual(m.classes, ['cat', 'dog']);
  assert.equal(m.item(1).path, join(root, 'dog', 'rgba.png'));
  assert.deepEqual(Array.from(m.labels()!), [0, 1]);
  await writeFile(join(root, 'm.jsonl'), '{"path": "cat/a.png", "label": 1}\n{"path": "dog/rgba.png", "label": 10}\n{"path": "cat/rot.jpg", "label": 2}\n');
  const j = await ManifestDataset.load(join(root, 'm.jsonl'));
  assert.deepEqual(j.classes, ['1', '2', '10']);
  assert.deepEqual(Array.from(j.labels()!), [0, 2, 1]);
  const fixed = await ManifestDataset.load(join(root, 'm.csv'), { classes: ['bird', 'dog', 'cat'] });
  assert.deepEqual(Array.from(fixed.labels()!), [2, 1]);
  await writeFile(join(root, 'u.csv'), 'path\ncat/a.png\n');
  assert.equal((await ManifestDataset.load(join(root, 'u.csv'))).labels(), undefined);
  assert.deepEqual(parseCsv('a,"b\n""c"""\nd,e'), [
    { line: 1, fields: ['a', 'b\n"c"'] },
    { line: 3, fields: ['d', 'e'] },
  ]);
});

test('ManifestDataset refuses paths escaping its folder unless allowOutside', async () => {
  const root = join(tmp, 'folder');
  const dir = join(root, 'manifests');
  await mkdir(dir, { recursive: true });
  const f = join(dir, 'esc.csv');
  await writeFile(f, 'path,label\n../cat/a.png,cat\n');
  await assert.rejects(
    ManifestDataset.load(f),
    (e: Error) => e.message.includes(`${f} line 2`) && /outside the manifest's folder/.test(e.message) && /allowOutside/.test(e.message),
  );
  assert.equal((await ManifestDataset.load(f, { allowOutside: true })).length, 1);
  await writeFile(f, `path,label\n${join(root, 'cat', 'a.png')},cat\n`);
  await assert.rejects(ManifestDataset.load(f), /line 2: path .* points outside/);
  await symlink(join(root, 'cat', 'a.png'), join(dir, 'link.png'));
  await writeFile(f, 'path,label\nlink.png,cat\n');
  await assert.rejects(ManifestDataset.load(f), /line 2: link\.png is a symbolic link to a file outside/);
});

test('ManifestDataset errors: unknown label, missing file, bad header, bad JSON', async () => {
  const root = join(tmp, 'folder');
  const f = join(root, 'bad.csv');
  await writeFile(f, 'path,label\ncat/a.png,cat\ndog/rgba.png,wolf\n');
  await assert.rejects(
    ManifestDataset.load(f, { classes: ['cat', 'dog'] }),
    (e: Error) => e.message.includes(`${f} line 3`) && /unknown label "wolf"/.test(e.message),
  );
  await writeFile(f, 'path,label\ncat/a.png,cat\ncat/nope.png,cat\n');
  await assert.rejects(ManifestDataset.load(f), /1 listed file\(s\) do not exist \(line 3: cat\/nope\.png\)/);
  assert.equal((await ManifestDataset.load(f, { checkFiles: false })).length, 2);
  await writeFile(f, 'file,label\na.png,cat\n');
  await assert.rejects(ManifestDataset.load(f), /line 1: the header .* has no "path" column/);
  await writeFile(f, 'path,label\na.png,cat,extra\n');
  await assert.rejects(ManifestDataset.load(f), /line 2: 3 fields but the header has 2/);
  const j = join(root, 'bad.jsonl');
  await writeFile(j, '{"path": "cat/a.png", "label": "cat"}\n{"path": "cat/a.png" "label": "cat"}\n');
  await assert.rejects(ManifestDataset.load(j), /bad\.jsonl line 2: invalid JSON/);
});

test('ArrayDataset: batches, subsets, validation', () => {
  const x = Float32Array.from({ length: 4 * 6 }, (_, i) => i);
  const ds = new ArrayDataset({ x, itemShape: [2, 3], y: [0, 2, 1, 2], classes: ['a', 'b', 'c'] });
  assert.equal(ds.length, 4);
  assert.deepEqual(ds.item(1), { index: 1, label: 2 });
  assert.deepEqual(Array.from(ds.features(2)), [12, 13, 14, 15, 16, 17]);
  const out = new Float32Array(100);
  const b = ds.batch([3, 0], out);
  assert.deepEqual(Array.from(b.x), [18, 19, 20, 21, 22, 23, 0, 1, 2, 3, 4, 5]);
  assert.equal(b.x.buffer, out.buffer);
  assert.deepEqual(Array.from(b.y), [2, 0]);
  const s = ds.subset([1, 2]);
  assert.deepEqual(Array.from(s.labels()!), [2, 1]);
  assert.deepEqual(s.classes, ['a', 'b', 'c']);
  assert.match(ds.describe(), /4 items of shape \[2, 3\], 3 classes \(a: 1, b: 1, c: 2\)/);
  assert.throws(() => new ArrayDataset({ x: new Float32Array(7), itemShape: [2, 3] }), /not a multiple of the item size 6/);
  assert.throws(() => new ArrayDataset({ x, itemShape: [6], y: [0, 1] }), /4 items but 2 labels/);
  assert.throws(() => new ArrayDataset({ x, itemShape: [6], y: [0, 1, 2, 3], classes: ['a', 'b'] }), /label 3 is outside the 2 class names/);
});
