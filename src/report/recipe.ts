/**
 * The exact preprocessing of a model as a short recipe to reproduce its predictions outside graft: the
 * settings in words and the same steps as Python (Pillow + NumPy) code, ending with the calibrated softmax.
 */
import { cropResizeTarget, type PreprocessConfig } from '../data/preprocess.js';

/** One line per setting: size, resize policy, crop, scale, mean/std, channel order, layout, temperature. */
export function preprocessingSummary(p: PreprocessConfig, temperature = 1): string[] {
  const [h, w] = p.size;
  const resize = {
    crop: `resize so the image covers ${cropResizeTarget(p)[1]}×${cropResizeTarget(p)[0]} (size / cropFraction ${p.cropFraction}, aspect kept), then centre-crop ${w}×${h}`,
    stretch: `resize to ${w}×${h}, ignoring the aspect ratio`,
    pad: `fit inside ${w}×${h} keeping the aspect ratio, pad with grey ${p.padValue}`,
  }[p.resize];
  return [
    `input: ${p.layout === 'NCHW' ? `[N, ${p.channels}, ${h}, ${w}]` : `[N, ${h}, ${w}, ${p.channels}]`} float32 (${p.layout})`,
    `geometry: ${resize} (${p.interpolation}; EXIF orientation applied first)`,
    `colour: ${p.channels === 1 ? 'grayscale (ITU-R 601 luma)' : `${p.channelOrder} channel order`}`,
    `values: x / ${p.scale}, then (x - mean) / std with mean [${p.mean.join(', ')}], std [${p.std.join(', ')}]`,
    `output: probabilities = softmax(logits / ${temperature}) (the model's "probabilities" output already includes the temperature)`,
  ];
}

/** The same steps as runnable Python (Pillow + NumPy + onnxruntime). */
export function preprocessingCode(p: PreprocessConfig, temperature = 1): string {
  const [h, w] = p.size;
  const resample = p.interpolation === 'bicubic' ? 'Image.BICUBIC' : 'Image.BILINEAR';
  const geometry = {
    crop: [
      `th, tw = ${cropResizeTarget(p).join(', ')}  # size / cropFraction`,
      'if img.height * tw <= img.width * th: rh, rw = th, int(th * img.width / img.height)',
      'else: rh, rw = int(tw * img.height / img.width), tw',
      `rh, rw = max(rh, ${h}), max(rw, ${w})`,
      `img = img.resize((rw, rh), ${resample})`,
      `left, top = round((rw - ${w}) / 2), round((rh - ${h}) / 2)  # Python rounds half to even, as graft does`,
      `img = img.crop((left, top, left + ${w}, top + ${h}))`,
    ],
    stretch: [`img = img.resize((${w}, ${h}), ${resample})`],
    pad: [`img = ImageOps.pad(img, (${w}, ${h}), ${resample}, color=(${p.padValue},) * 3)`],
  }[p.resize];
  const lines = [
    'import numpy as np, onnxruntime as ort',
    'from PIL import Image, ImageOps',
    `img = ImageOps.exif_transpose(Image.open(path)).convert(${p.channels === 1 ? "'L'" : "'RGB'"})`,
    ...geometry,
    `x = np.asarray(img, dtype=np.float32)${p.channels === 1 ? '[..., None]' : ''} / ${p.scale}`,
    ...(p.channels === 3 && p.channelOrder === 'BGR' ? ['x = x[..., ::-1]  # BGR'] : []),
    `x = (x - np.array([${p.mean.join(', ')}], np.float32)) / np.array([${p.std.join(', ')}], np.float32)`,
    p.layout === 'NCHW' ? 'x = x.transpose(2, 0, 1)[None]  # NCHW' : 'x = x[None]  # NHWC',
    "sess = ort.InferenceSession('model.onnx')",
    "probs = sess.run(['probabilities'], {sess.get_inputs()[0].name: x})[0]",
    `# = softmax(logits / ${temperature}); the label is labels[probs.argmax()] (labels from model.json)`,
  ];
  return lines.join('\n');
}
