/**
 * No code runs from a model file. nsfwjs-style folders hold a `model.min.js`; graft reads the model.json object
 * out of it with a data-only parser and never evaluates it. A hostile `model.min.js` that escapes `node:vm`
 * (`module.constructor.constructor('return process')()` → child_process) must fail with one clear error through
 * every command that opens a model (`graft import`, `graft predict`, `graft train --backbone`) and the library
 * (`loadAnyModel`, `Network.load`), and its payload must never run. The three models nsfwjs bundles must read
 * exactly as they did when graft evaluated them.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import vm from 'node:vm';
import sharp from 'sharp';
import { loadAnyModel, NSFWJS_MODELS, type NsfwjsModelName, nsfwjsModelDir, unwrapModuleObject } from '../../src/import/index.js';
import { JsLiteralError, parseJsLiteral } from '../../src/import/js-literal.js';
import { Network } from '../../src/train/network.js';
import { runGraft } from '../cli-run.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'graft-no-code-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** The vm escape: reach the host's `process` through the sandbox's `module` object, then child_process. */
function payload(marker: string): string {
  return (
    "(function(){var p=module.constructor.constructor('return process')();" +
    "var cp=p.getBuiltinModule?p.getBuiltinModule('child_process'):p.mainModule.require('child_process');" +
    `cp.execFileSync(p.execPath,['-e',${JSON.stringify(`require('fs').writeFileSync(${JSON.stringify(marker)},'pwned')`)}]);` +
    'return {class_name:"Sequential",config:{layers:[]}}})()'
  );
}

/** A folder laid out like nsfwjs's (model.min.js + a wrapped shard) whose model.min.js runs `payload` when evaluated. */
function hostileFolder(name: string, form: 'statement' | 'inside-literal'): { dir: string; marker: string } {
  const dir = path.join(tmp, name);
  fs.mkdirSync(dir, { recursive: true });
  const marker = path.join(tmp, `${name}.pwned`);
  const manifest = 'weightsManifest:[{paths:["group1-shard1of1"],weights:[]}]';
  const src =
    form === 'statement'
      ? // the whole export is code: the escape runs first, then a model object is exported
        `module.exports=(function(){${payload(marker)};return {modelTopology:{class_name:"Sequential",config:{layers:[]}},${manifest}}})();`
      : // nsfwjs's shape (exports = {...}) with the escape hidden inside the literal
        `!function(){var n={exports:{}};n.exports={modelTopology:${payload(marker)},${manifest}};module.exports=n.exports}();`;
  fs.writeFileSync(path.join(dir, 'model.min.js'), src);
  fs.writeFileSync(path.join(dir, 'group1-shard1of1.min.js'), 'module.exports=""');
  return { dir, marker };
}

test('a model.min.js that escapes node:vm runs nothing: graft import / predict / train --backbone and the library refuse it with one error', async () => {
  const cases = [hostileFolder('statement', 'statement'), hostileFolder('literal', 'inside-literal')];
  for (const [cls, r] of [
    ['a', 0],
    ['b', 255],
  ] as const)
    for (const i of [0, 1]) {
      fs.mkdirSync(path.join(tmp, 'data', cls), { recursive: true });
      await sharp({ create: { width: 8, height: 8, channels: 3, background: { r, g: 20 * i, b: 0 } } })
        .png()
        .toFile(path.join(tmp, 'data', cls, `${i}.png`));
    }
  for (const { dir, marker } of cases) {
    const file = path.join(dir, 'model.min.js');
    const runs = await Promise.all([
      runGraft(['import', dir], tmp),
      runGraft(['import', file, '--out', path.join(tmp, `${path.basename(dir)}.onnx`)], tmp),
      runGraft(['predict', file, 'data'], tmp),
      runGraft(['train', '--backbone', dir, '--data', 'data', '--epochs', '1'], tmp),
    ]);
    assert.ok(!fs.existsSync(marker), `the payload ran: ${marker} exists`);
    for (const [i, r] of runs.entries()) {
      const what = `${path.basename(dir)} run ${i}: ${r.stderr}`;
      assert.equal(r.code, 1, what);
      assert.equal(r.stdout, '', what);
      assert.match(r.stderr, /^graft: error: [^\n]+\n$/, `one line: ${what}`);
      assert.match(r.stderr, /model\.min\.js is not a wrapped model\.json graft can read: .*graft never runs JavaScript from a model/, what);
    }
    assert.throws(() => loadAnyModel(file), /graft never runs JavaScript from a model/);
    assert.throws(() => loadAnyModel(dir), /graft never runs JavaScript from a model/);
    assert.throws(() => Network.load(file), /graft never runs JavaScript from a model/);
    assert.ok(!fs.existsSync(marker), `the payload ran in-process: ${marker} exists`);
  }
  assert.match(
    (() => {
      try {
        unwrapModuleObject(path.join(cases[1]!.dir, 'model.min.js'));
        return '';
      } catch (e) {
        return (e as Error).message;
      }
    })(),
    /the exported value is not pure data \(line 1, column \d+: found `\(` \("\(function/,
    'names what is not data and where',
  );
  assert.ok(!fs.readdirSync(tmp).some((f) => f.endsWith('.onnx')), 'nothing written');
});

test('the three model.min.js files nsfwjs bundles read exactly as evaluating them did (same JSON, same numbers)', () => {
  for (const name of Object.keys(NSFWJS_MODELS) as NsfwjsModelName[]) {
    const file = path.join(nsfwjsModelDir(name), 'model.min.js');
    const got = unwrapModuleObject(file);
    // the reference: what graft did before, evaluating the trusted installed file in a vm context (test only)
    const module = { exports: {} as unknown };
    vm.runInNewContext(fs.readFileSync(file, 'utf8'), { module, exports: module.exports });
    const before = JSON.parse(JSON.stringify(module.exports)) as unknown;
    assert.deepStrictEqual(got, before, name);
    assert.equal(JSON.stringify(got), JSON.stringify(before), name);
  }
});

test('parseJsLiteral reads minified data (unquoted keys, !0/!1, .5, 1e-3, both quotes, escapes, comments) and nothing else', () => {
  const src = `/* c */ {a:1,"b":-.5,'c':[!0,!1,null,true,false],d:1e-3,e:"x\\"y\\u00e9\\x41\\n",f:'it\\'s',g:{},h:[],0x10:0x1F,__proto__:{p:1},} // end`;
  const { value, end } = parseJsLiteral(src);
  assert.equal(src.slice(end).trim(), '// end');
  assert.deepStrictEqual(
    value,
    JSON.parse('{"a":1,"b":-0.5,"c":[true,false,null,true,false],"d":0.001,"e":"x\\"yéA\\n","f":"it\'s","g":{},"h":[],"16":31,"__proto__":{"p":1}}'),
  );
  assert.equal(Object.getPrototypeOf(value), Object.prototype, '__proto__ is an own key, as with JSON.parse');
  for (const [bad, re] of [
    ['{a:b}', /identifier `b`/],
    ['{a:f()}', /identifier `f`/],
    ['{a:1+2}', /"," or "}"/],
    ['[`x`]', /```/],
    ['{[k]:1}', /computed key/],
    ['[1,,2]', /array hole/],
    ['{a:(1)}', /`\(`/],
    ['{a:1e999}', /not finite/],
    ['{a:void 0}', /identifier `void`/],
    ['{a:"\\101"}', /octal escape/],
    ['{a:1', /end of file/],
  ] as const)
    assert.throws(
      () => parseJsLiteral(bad),
      (e: Error) => e instanceof JsLiteralError && re.test(e.message) && /line 1, column \d+/.test(e.message),
      bad,
    );
});
