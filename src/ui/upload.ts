/** Uploaded images in graft ui (try-it, images dragged into a class): read within the byte limit, checked to be an image within the pixel limit. */
import type { MultipartFile } from '@fastify/multipart';
import sharp from 'sharp';
import type { UiContext } from './app.js';
import { HttpError } from './guard.js';

/**
 * The bytes of an uploaded image.
 * @throws HttpError 413 over the byte or pixel limit, 422 for a file that is no image graft decodes.
 */
export async function readImageUpload(file: MultipartFile, ctx: UiContext): Promise<Buffer> {
  const buf = await file.toBuffer().catch((e: Error) => {
    throw new HttpError(413, `${file.filename}: ${e.message} (the limit is ${ctx.maxUploadBytes} bytes). Send a smaller image.`);
  });
  const meta = await sharp(buf)
    .metadata()
    .catch(() => {
      throw new HttpError(422, `${file.filename} is not an image graft can decode (JPEG, PNG, WebP, GIF, TIFF, AVIF).`);
    });
  const pixels = (meta.width ?? 0) * (meta.height ?? 0);
  if (pixels > ctx.maxUploadPixels)
    throw new HttpError(413, `${file.filename} has ${meta.width}×${meta.height} pixels, over the limit of ${ctx.maxUploadPixels}. Send a smaller image.`);
  return buf;
}
