/** Shapes the graft ui server sends and its page reads (type-only, so the browser code can import them). */

/** A backbone the page offers: a registry model (cached or fetched on first use) or a built-in architecture. */
export interface BackboneChoice {
  kind: 'registry' | 'arch';
  name: string;
  description: string;
  cached?: boolean;
}

/** GET /api/info. */
export interface UiInfo {
  folders: string[];
  runsDir: string;
  modes: readonly string[];
  backbones: BackboneChoice[];
}

/** One row of GET /api/runs. */
export interface ListedRun {
  name: string;
  /** train: a training run (Train, Look); adapt: a `graft adapt --out` run (Compare's adaptation methods). */
  kind: 'train' | 'adapt';
  state: string;
  epochs: number;
  metrics?: { val?: { loss: number; acc: number }; test?: { loss: number; acc: number } };
}
