/** A tiny element builder and the page's chart helper (vega-embed, bundled; no chart code of our own). */
import embed, { type VisualizationSpec } from 'vega-embed';

type Child = Node | string | number | undefined | null | false;

/** Creates an element with attributes (`on*` functions become listeners) and children. */
export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, unknown> = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v as EventListener);
    else if (k in el && typeof v !== 'string') (el as unknown as Record<string, unknown>)[k] = v;
    else el.setAttribute(k, String(v));
  }
  for (const c of children) if (c !== undefined && c !== null && c !== false) el.append(c instanceof Node ? c : String(c));
  return el;
}

/** Replaces the children of `el`. */
export function fill(el: Element, ...children: Child[]): void {
  el.replaceChildren(
    ...children.filter((c): c is Node | string | number => c !== undefined && c !== null && c !== false).map((c) => (c instanceof Node ? c : String(c))),
  );
}

/** Draws a Vega-Lite spec from the run layer into `el` (SVG, so marks can be clicked and read); returns the view. */
export async function chart(el: HTMLElement, spec: unknown) {
  const r = await embed(el, spec as VisualizationSpec, { renderer: 'svg', actions: false });
  return r.view;
}

/** A percentage with one decimal. */
export const pct = (x: number | undefined) => (typeof x === 'number' ? `${(x * 100).toFixed(1)}%` : '–');
/** A number with 3 decimals. */
export const num = (x: number | undefined) => (typeof x === 'number' ? x.toFixed(3) : '–');

/** Shows an error (or clears it) in the page's status line. */
export function status(message: string, error = false): void {
  const el = document.getElementById('status')!;
  el.textContent = message;
  el.className = error ? 'error' : '';
}
