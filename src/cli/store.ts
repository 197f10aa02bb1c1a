/**
 * `--store` and `--s3-endpoint`, the one pair of flags that says where distributed extraction's shared feature
 * stores live (`graft extract` and `graft worker` register them here; `openFeatureStorage` in src/scale/storage.ts
 * parses the value).
 */
import type { Command } from 'commander';

/** The values of {@link addStoreOptions}'s flags. */
export interface StoreFlags {
  store?: string;
  s3Endpoint?: string;
}

/** Registers `--store <folder|s3://bucket/prefix>` and `--s3-endpoint <url>` on a command. */
export function addStoreOptions(cmd: Command): Command {
  return cmd
    .option(
      '--store <where>',
      'the shared feature storage: a folder every machine sees at the same path, or s3://bucket/prefix (AWS S3, MinIO, Ceph; credentials from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE)',
    )
    .option('--s3-endpoint <url>', 'the S3-compatible server of an s3:// --store, e.g. http://127.0.0.1:9000 (default: AWS_ENDPOINT_URL_S3, else AWS)');
}
