/** The model registry (`graft models`): known architectures, their preprocessing, and fetching their ONNX weights into a cache. */
export { type DownloadOptions, type DownloadResult, downloadFile } from './download.js';
export { type CachedSidecar, type CacheState, cachePaths, cacheState, type FetchOptions, type FetchResult, fetchModel, modelsDir } from './fetch.js';
export { isModelName } from './name.js';
export {
  BUILTIN_MODELS,
  entryPreprocess,
  entrySource,
  findModel,
  loadRegistry,
  type ModelDownload,
  type ModelEntry,
  type ModelFamily,
  type ModelLink,
  modelEntrySchema,
  readRegistryFile,
  registryFiles,
  timmExportCommand,
  torchvisionExportCommand,
} from './registry.js';
export { type ResolveModelOptions, resolveModelRef } from './resolve.js';
