/**
 * The page of `graft ui` and its assets, all served by the local server (no CDN): index.html, the stylesheet,
 * and one script bundled by esbuild from the typed browser code in ./web/ (with vega-embed, vega and vega-lite
 * from node_modules). The bundle is built once per process, on first request, or read from the one
 * `npm run build` wrote where esbuild is not installed.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));

/** The browser code's entry point (TypeScript in the source tree). */
function webEntry(): string {
  for (const dir of [path.join(HERE, 'web'), path.resolve(HERE, '../../../src/ui/web')]) {
    const f = path.join(dir, 'main.ts');
    if (fs.existsSync(f)) return f;
  }
  throw new Error(`graft ui: the browser code (src/ui/web/main.ts) is missing beside ${HERE}; reinstall graft.`);
}

let bundle: Promise<string> | undefined;

/** The bundle `npm run build` writes (scripts/build-ui.mjs), for installs without esbuild: dist/ui-web/app.js. */
export const PREBUILT_SCRIPT = path.resolve(HERE, '../../ui-web/app.js');

/** Bundles ./web/main.ts and its imports into one browser ES module with esbuild. */
export async function bundleAppScript(): Promise<string> {
  const esbuild = await import('esbuild');
  const r = await esbuild.build({
    entryPoints: [webEntry()],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    minify: true,
    write: false,
    logLevel: 'silent',
    legalComments: 'none',
  });
  return r.outputFiles[0]!.text;
}

/** The page's script: bundled from the source when esbuild is installed (development), else the prebuilt bundle. */
export function appScript(): Promise<string> {
  bundle ??= bundleAppScript().catch((e: NodeJS.ErrnoException) => {
    if (e.code !== 'ERR_MODULE_NOT_FOUND' || !fs.existsSync(PREBUILT_SCRIPT))
      throw new Error(`graft ui cannot build its page script (${e.message}); run \`npm run build\` in the graft package, which writes ${PREBUILT_SCRIPT}.`);
    return fs.readFileSync(PREBUILT_SCRIPT, 'utf8');
  });
  bundle.catch(() => (bundle = undefined));
  return bundle;
}

/** The stylesheet. */
export function appStyle(): string {
  return fs.readFileSync(path.join(path.dirname(webEntry()), 'style.css'), 'utf8');
}

/** index.html for a session: the token rides in the asset URLs and a meta tag, so every request carries it. */
export function indexHtml(token: string): string {
  const t = encodeURIComponent(token);
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="graft-token" content="${t}">
<title>graft ui</title>
<link rel="stylesheet" href="/assets/app.css?token=${t}">
<script type="module" src="/assets/app.js?token=${t}"></script>
</head>
<body>
<header><h1>graft</h1><nav id="tabs"></nav><span id="status"></span></header>
<main id="main"></main>
</body>
</html>
`;
}
