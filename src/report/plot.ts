/**
 * Offline chart rendering: a Vega-Lite spec is compiled to Vega, run headless (`renderer: 'none'`) and
 * serialised to SVG; PNG is rasterised from that SVG with sharp (librsvg). No browser, canvas or network.
 */

/** A Vega-Lite specification (a plain JSON object). */
export type VegaLiteSpec = Record<string, unknown>;

/** Options of {@link renderVegaLite}. */
export interface RenderOptions {
  /** Which outputs to produce: 'svg' only, 'png' (SVG is still returned) or 'both' (default). */
  format?: 'svg' | 'png' | 'both';
  /** PNG pixels per SVG unit (default 2, for sharp text on high-density screens). */
  scale?: number;
}

/** A rendered chart: the SVG text, and the PNG bytes unless only SVG was asked for. */
export interface RenderedChart {
  svg: string;
  png?: Buffer;
  /** Size of the SVG in CSS pixels. */
  width: number;
  height: number;
}

/**
 * Renders a Vega-Lite spec to SVG (and PNG).
 * @throws when the spec does not compile, naming the Vega-Lite error and how to fix the spec.
 */
export async function renderVegaLite(spec: VegaLiteSpec, opts: RenderOptions = {}): Promise<RenderedChart> {
  const [vega, vl] = await Promise.all([import('vega'), import('vega-lite')]);
  let compiled: unknown;
  try {
    compiled = vl.compile(spec as never).spec;
  } catch (e) {
    throw new Error(`Vega-Lite could not compile a chart spec: ${(e as Error).message}. Fix the spec (see https://vega.github.io/vega-lite/docs/).`);
  }
  const view = new vega.View(vega.parse(compiled as never), { renderer: 'none' });
  let svg: string;
  try {
    svg = await view.toSVG();
  } finally {
    view.finalize();
  }
  const m = /<svg[^>]*\swidth="([\d.]+)"[^>]*\sheight="([\d.]+)"/.exec(svg);
  const width = m ? Number(m[1]) : 0;
  const height = m ? Number(m[2]) : 0;
  const out: RenderedChart = { svg, width, height };
  if ((opts.format ?? 'both') !== 'svg') out.png = await svgToPng(svg, opts.scale ?? 2);
  return out;
}

/**
 * Rasterises an SVG document to PNG at `scale` pixels per SVG unit.
 * @throws naming the problem when sharp cannot read the SVG.
 */
export async function svgToPng(svg: string, scale = 2): Promise<Buffer> {
  const { default: sharp } = await import('sharp');
  try {
    return await sharp(Buffer.from(svg), { density: 72 * scale })
      .flatten({ background: '#ffffff' })
      .png()
      .toBuffer();
  } catch (e) {
    throw new Error(`Could not rasterise a chart to PNG: ${(e as Error).message}. The SVG is still usable; check that sharp was installed with SVG support.`);
  }
}
