/** graft's data layer: IDX/MNIST loading, datasets, splits, image decoding/preprocessing, augmentation. */

export * from './augment.js';
export * from './dataset.js';
export { DEFAULT_DECODE_MEMORY_MB, DEFAULT_MAX_IMAGE_PIXELS, DecodeBudget } from './decode-budget.js';
export { IMAGE_EXTENSIONS, isImageFile, listImages, type WarnFn, warnLeftOut } from './files.js';
export * from './idx.js';
export * from './image.js';
export * from './preprocess.js';
export * from './shift.js';
export * from './split.js';
