#!/usr/bin/env node
// A static file server for a graft web bundle: `node serve.mjs <folder> [port]`, on 127.0.0.1 only.
// Serves .wasm as application/wasm (onnxruntime-web compiles it while it downloads) and nothing outside <folder>.
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';

const root = path.resolve(process.argv[2] ?? '.');
const port = Number(process.argv[3] ?? 8000);
const types = { '.html': 'text/html', '.js': 'text/javascript', '.mjs': 'text/javascript', '.json': 'application/json', '.wasm': 'application/wasm', '.onnx': 'application/octet-stream' };
if (!fs.existsSync(root)) {
  console.error(`serve.mjs: ${root} does not exist; pass the folder written by \`graft export --web\`.`);
  process.exit(1);
}
http
  .createServer((req, res) => {
    const rel = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    let file = path.join(root, rel);
    if (file !== root && !file.startsWith(root + path.sep)) return void res.writeHead(403).end();
    if (fs.existsSync(file) && fs.statSync(file).isDirectory()) file = path.join(file, 'index.html');
    if (!fs.existsSync(file)) return void res.writeHead(404).end('not found');
    res.writeHead(200, { 'content-type': types[path.extname(file)] ?? 'application/octet-stream' });
    fs.createReadStream(file).pipe(res);
  })
  .listen(port, '127.0.0.1', () => console.log(`serving ${root} at http://127.0.0.1:${port}/`));
