/** Folder listings: symbolic links followed like torchvision's ImageFolder, link loops, file names that are not UTF-8. */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import sharp from 'sharp';
import { ImageFolderDataset, UnlabelledFolder } from '../../src/data/dataset.js';

const tmp = await mkdtemp(join(tmpdir(), 'graft-files-'));
after(() => rm(tmp, { recursive: true, force: true }));

const png = (file: string) =>
  sharp({ create: { width: 4, height: 4, channels: 3, background: { r: 9, g: 9, b: 9 } } })
    .png()
    .toFile(file);

test('ImageFolderDataset follows symlinked class folders, sub-folders and files; a link loop is left out with a warning', async () => {
  const root = join(tmp, 'links');
  const elsewhere = join(tmp, 'elsewhere');
  await mkdir(join(root, 'cat'), { recursive: true });
  await mkdir(join(elsewhere, 'dog'), { recursive: true });
  await mkdir(join(elsewhere, 'more'), { recursive: true });
  await png(join(root, 'cat', 'a.png'));
  await png(join(elsewhere, 'dog', 'd1.png'));
  await png(join(elsewhere, 'dog', 'd2.png'));
  await png(join(elsewhere, 'more', 'm.png'));
  await png(join(elsewhere, 'single.png'));
  await symlink(join(elsewhere, 'dog'), join(root, 'dog')); // a whole class through a link
  await symlink(join(elsewhere, 'more'), join(root, 'cat', 'more')); // a linked sub-folder
  await symlink(join(elsewhere, 'single.png'), join(root, 'cat', 'b.png')); // a linked file
  await symlink(join(root, 'cat'), join(root, 'cat', 'loop')); // a loop back to the class folder
  await symlink(join(elsewhere, 'nothing.png'), join(root, 'cat', 'broken.png')); // a broken link
  const warnings: string[] = [];
  const ds = await ImageFolderDataset.load(root, { onWarning: (m) => warnings.push(m) });
  assert.deepEqual(ds.classes, ['cat', 'dog']);
  assert.deepEqual(
    ds.paths.map((p) => p.slice(root.length + 1)),
    ['cat/a.png', 'cat/b.png', 'cat/more/m.png', 'dog/d1.png', 'dog/d2.png'],
  );
  assert.deepEqual(Array.from(ds.labels()!), [0, 0, 0, 1, 1]);
  assert.equal(warnings.length, 1, warnings.join('\n'));
  assert.match(warnings[0]!, /cat\/loop \(a symbolic link loop/);
  assert.match(warnings[0]!, /cat\/broken\.png \(a symbolic link to nothing readable/);
  assert.doesNotMatch(warnings[0]!, /ignoring .* directly in/);
});

test('a file name that is not UTF-8 is reported by name (bytes escaped), not loaded as a missing file', async () => {
  const root = join(tmp, 'bytes');
  await mkdir(join(root, 'cat'), { recursive: true });
  await mkdir(join(root, 'dog'), { recursive: true });
  await png(join(root, 'cat', 'a.png'));
  await png(join(root, 'dog', 'd.png'));
  // Linux names are bytes: 0xFF + '.png' cannot be spelled as a Node string path
  await writeFile(
    Buffer.concat([Buffer.from(join(root, 'cat', '/')), Buffer.from([0xff]), Buffer.from('.png')]),
    await sharp(join(root, 'cat', 'a.png')).toBuffer(),
  );
  for (const load of [
    (w: (m: string) => void) => ImageFolderDataset.load(root, { onWarning: w }),
    (w: (m: string) => void) => UnlabelledFolder.load(root, { onWarning: w }),
  ]) {
    const warnings: string[] = [];
    const ds = await load((m) => warnings.push(m));
    assert.deepEqual(
      ds.paths.map((p) => p.slice(root.length + 1)),
      ['cat/a.png', 'dog/d.png'],
    );
    assert.equal(warnings.length, 1, warnings.join('\n'));
    assert.ok(warnings[0]!.includes(`${join(root, 'cat')}/\\xff.png (the name is not valid UTF-8`), warnings[0]);
  }
});
