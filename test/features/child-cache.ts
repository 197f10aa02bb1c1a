/** Child process of the cross-process cache test: `node --import tsx child-cache.ts <cacheDir> <file>...` prints {hits, misses, features}. */
import { cachedFeatures } from '../../src/features/cache.js';
import { CFG, tinyModels } from './helpers.js';

const [cacheDir, ...files] = process.argv.slice(2);
const r = await cachedFeatures({ model: tinyModels().extractor, preprocess: CFG, items: files.map((path) => ({ path })), batchSize: 2, cacheDir });
process.stdout.write(JSON.stringify({ hits: r.hits, misses: r.misses, features: Array.from(r.features) }));
