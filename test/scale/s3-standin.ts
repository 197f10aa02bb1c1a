/**
 * A loopback stand-in for an S3-compatible server (path-style, as MinIO): only what @aws-sdk/client-s3 calls for
 * S3FeatureStorage — PUT/GET/HEAD object, HEAD bucket, ListObjectsV2 (paged, a few keys a page so paging is used),
 * DELETE. Signatures are not checked. An object is stored only when its whole body arrived, as on a real server.
 * `denied` buckets answer 403 AccessDenied; `hold(key)` keeps matching PUTs unanswered and unstored (a client
 * killed during such an upload leaves nothing).
 */
import { EventEmitter } from 'node:events';
import type http from 'node:http';
import { startLoopback, stopLoopback } from '../loopback.js';

export interface S3StandIn {
  /** The endpoint, `http://127.0.0.1:<port>`. */
  endpoint: string;
  /** Objects by `bucket/key`. */
  objects: Map<string, Buffer>;
  buckets: Set<string>;
  denied: Set<string>;
  /** Keys whose PUTs are held (never answered nor stored) while it returns true; 'held' is emitted with the key. */
  hold?: (key: string) => boolean;
  /** `METHOD bucket/key?query` of every request. */
  log: string[];
  events: EventEmitter;
  /** Keys under `bucket/prefix`. */
  keys(bucket: string, prefix?: string): string[];
  close(): void;
}

const xml = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const PAGE = 3;

export async function startS3StandIn(buckets: string[]): Promise<S3StandIn> {
  const s: Omit<S3StandIn, 'endpoint' | 'close'> = {
    objects: new Map(),
    buckets: new Set(buckets),
    denied: new Set(),
    log: [],
    events: new EventEmitter(),
    keys: (bucket, prefix = '') => [...s.objects.keys()].filter((k) => k.startsWith(`${bucket}/${prefix}`)).map((k) => k.slice(bucket.length + 1)),
  };
  const fail = (res: http.ServerResponse, status: number, code: string, head: boolean) => {
    res.writeHead(status, { 'content-type': 'application/xml' });
    res.end(head ? undefined : `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>${code}</Message></Error>`);
  };
  const handler: http.RequestListener = (req, res) => {
    const url = new URL(req.url!, 'http://x');
    const [, bucket = '', ...rest] = decodeURIComponent(url.pathname).split('/');
    const key = rest.join('/');
    const head = req.method === 'HEAD';
    s.log.push(`${req.method} ${bucket}/${key}${url.search}`);
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (!s.buckets.has(bucket)) return fail(res, 404, 'NoSuchBucket', head);
      if (s.denied.has(bucket)) return fail(res, 403, 'AccessDenied', head);
      const id = `${bucket}/${key}`;
      if (req.method === 'PUT' && key) {
        if (s.hold?.(key)) {
          s.events.emit('held', key);
          return; // neither answered nor stored
        }
        s.objects.set(id, Buffer.concat(chunks));
        res.writeHead(200, { etag: '"x"' });
        return res.end();
      }
      if ((req.method === 'GET' || head) && key) {
        const o = s.objects.get(id);
        if (!o) return fail(res, 404, 'NoSuchKey', head);
        res.writeHead(200, { 'content-length': o.length, 'content-type': 'application/octet-stream', etag: '"x"' });
        return res.end(head ? undefined : o);
      }
      if (req.method === 'DELETE' && key) {
        s.objects.delete(id);
        res.writeHead(204);
        return res.end();
      }
      if (head) {
        res.writeHead(200);
        return res.end();
      }
      if (req.method === 'GET' && url.searchParams.get('list-type') === '2') {
        const prefix = url.searchParams.get('prefix') ?? '';
        const all = s.keys(bucket, prefix).sort();
        const after = url.searchParams.get('continuation-token');
        const from = after ? all.findIndex((k) => k > after) : 0;
        const page = from < 0 ? [] : all.slice(from, from + PAGE);
        const truncated = from >= 0 && from + PAGE < all.length;
        const contents = page
          .map(
            (k) =>
              `<Contents><Key>${xml(k)}</Key><Size>${s.objects.get(`${bucket}/${k}`)!.length}</Size><LastModified>2026-01-01T00:00:00.000Z</LastModified><ETag>"x"</ETag></Contents>`,
          )
          .join('');
        res.writeHead(200, { 'content-type': 'application/xml' });
        return res.end(
          `<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>${bucket}</Name><Prefix>${xml(prefix)}</Prefix><KeyCount>${page.length}</KeyCount><MaxKeys>${PAGE}</MaxKeys><IsTruncated>${truncated}</IsTruncated>${truncated ? `<NextContinuationToken>${xml(page.at(-1)!)}</NextContinuationToken>` : ''}${contents}</ListBucketResult>`,
        );
      }
      fail(res, 400, 'NotImplemented', head);
    });
  };
  const { server, base } = await startLoopback(handler);
  return Object.assign(s, { endpoint: base, close: () => stopLoopback(server) });
}
