"""Issue 17 item 4: the tables of docs/benchmarks.md's "Session 7" from the files the stability runs leave in runs/st/
(bench/da-shift-ref.py, bench/adapt.ts --target-pool source, bench/adapt-swap.ts).

For each method: graft's and the reference's target accuracy per seed (each with its own draws), mean ± sd, the sd
ratio with a 95 % F-test interval for σ_graft/σ_ref (normal samples assumed) and the one-sided p-value of
"σ_graft/σ_ref > 1.5"; then the swap (graft from the reference's initial weights and batches): per-seed
differences graft − reference, and graft's MCC with TLlib's detached weights against the default, seed by seed.

Usage: python3 bench/stability-stats.py [--dir runs/st] [--ref-known "dann:0=41.9,1=66.0,2=44.8,3=40.4,4=51.3"]
"""
import argparse, glob, json, math, os
import numpy as np
from scipy import stats


def sd_ratio(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    r = a.std(ddof=1) / b.std(ddof=1)
    d1, d2 = len(a) - 1, len(b) - 1
    lo = r / math.sqrt(stats.f.ppf(0.975, d1, d2))
    hi = r / math.sqrt(stats.f.ppf(0.025, d1, d2))
    p_over = stats.f.sf(r * r / 2.25, d1, d2)  # P(F ≥ observed | σ ratio = 1.5): small → ratio > 1.5
    p_under = stats.f.cdf(r * r / 2.25, d1, d2)  # small → ratio < 1.5
    return r, lo, hi, p_over, p_under


def ms(v):
    v = np.asarray(v, float)
    return "%.1f ± %.1f" % (v.mean(), v.std(ddof=1)) if len(v) > 1 else "%.1f" % v[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", default="runs/st")
    ap.add_argument("--ref-known", default="", help="reference accuracies %% not rerun here, e.g. dann:0=41.9,1=66.0 "
                    "(exp_da_shift.py is deterministic per seed: its reruns equal earlier tables to the digit)")
    a = ap.parse_args()
    ref = {}
    for f in glob.glob(os.path.join(a.dir, "ref", "*.json")):
        d = json.load(open(f))
        tag = d["method"] + ("-detach" if d.get("mcc_detach") else "")
        ref.setdefault(tag, {})[d["seed"]] = 100 * d["result"]["acc_target_shift"]
    for part in filter(None, a.ref_known.split(";")):
        m, kv = part.split(":")
        for x in kv.split(","):
            k, v = x.split("=")
            ref.setdefault(m, {}).setdefault(int(k), float(v))
    own = {}
    for line in open(os.path.join(a.dir, "graft-own.jsonl")):
        if line.startswith("{"):
            d = json.loads(line)
            own.setdefault(d["method"], {})[d["seed"]] = d["target_acc_last"]
    print("## each engine its own draws (graft: bench/adapt.ts --target-pool source; reference: exp_da_shift.py)\n")
    print("| method | seeds | graft per seed | graft mean ± sd | reference per seed | reference mean ± sd | sd ratio | 95 % F interval | p(ratio > 1.5) | p(ratio < 1.5) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for m in ["mcc", "dann"]:
        seeds = sorted(set(own.get(m, {})) & set(ref.get(m, {})))
        if len(seeds) < 2:
            continue
        g = [own[m][s] for s in seeds]
        r = [ref[m][s] for s in seeds]
        q, lo, hi, po, pu = sd_ratio(g, r)
        print("| %s | %d–%d (%d) | %s | %s | %s | %s | **%.2f×** | %.2f–%.2f | %.2f | %.2f |" % (
            m, seeds[0], seeds[-1], len(seeds), ", ".join("%.1f" % v for v in g), ms(g),
            ", ".join("%.1f" % v for v in r), ms(r), q, lo, hi, po, pu))
    print("\n## the swap: graft from the reference's initial weights, fed its batches (bench/adapt-swap.ts)\n")
    print("| run | seeds | graft per seed | reference per seed | graft − reference per seed | mean |diff| | max |diff| | graft mean ± sd | reference mean ± sd | sd ratio (95 % F interval) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    swaps = {}
    for f in sorted(glob.glob(os.path.join(a.dir, "swap-*.jsonl"))):
        tag = os.path.basename(f)[len("swap-"):-len(".jsonl")]
        rows = {}
        for line in open(f):
            d = json.loads(line)
            rows[d["seed"]] = d
        swaps[tag] = rows
        if tag.endswith("-detach"):
            continue  # graft's TLlib variant against the reference's default: the next table compares it with graft's default
        seeds = sorted(rows)
        g = [rows[s]["graft_target"] for s in seeds]
        r = [rows[s]["ref_target"] for s in seeds]
        diff = [x - y for x, y in zip(g, r)]
        ratio = ""
        if len(seeds) > 2:
            q, lo, hi, _, _ = sd_ratio(g, r)
            ratio = "%.2f× (%.2f–%.2f)" % (q, lo, hi)
        print("| %s | %s | %s | %s | %s | %.2f | %.2f | %s | %s | %s |" % (
            tag, ",".join(map(str, seeds)), ", ".join("%.1f" % v for v in g), ", ".join("%.1f" % v for v in r),
            ", ".join("%+.1f" % v for v in diff), np.mean(np.abs(diff)), np.max(np.abs(diff)), ms(g), ms(r), ratio))
    if "mcc" in swaps and "mcc-detach" in swaps:
        seeds = sorted(set(swaps["mcc"]) & set(swaps["mcc-detach"]))
        a_ = [swaps["mcc"][s]["graft_target"] for s in seeds]
        b_ = [swaps["mcc-detach"][s]["graft_target"] for s in seeds]
        d = np.asarray(b_) - np.asarray(a_)
        t = stats.ttest_rel(b_, a_) if len(seeds) > 1 else None
        print("\n## MCC detach (TLlib) against the default (the reference's), graft, the reference's draws\n")
        print("| seeds | default per seed | detached per seed | detached − default | default mean ± sd | detached mean ± sd | mean diff (paired t p) | sd ratio detached/default (95 % F) |")
        print("|---|---|---|---|---|---|---|---|")
        q, lo, hi, _, _ = sd_ratio(b_, a_) if len(seeds) > 2 else (float("nan"),) * 5
        print("| %s | %s | %s | %s | %s | %s | %+.2f (p %.2f) | %.2f× (%.2f–%.2f) |" % (
            ",".join(map(str, seeds)), ", ".join("%.1f" % v for v in a_), ", ".join("%.1f" % v for v in b_),
            ", ".join("%+.1f" % v for v in d), ms(a_), ms(b_), d.mean(), t.pvalue if t else float("nan"), q, lo, hi))
    pert = {}
    for f in glob.glob(os.path.join(a.dir, "ref-perturb", "*.json")):
        d = json.load(open(f))
        pert.setdefault(d["method"], {})[d["seed"]] = (d["perturb"], 100 * d["result"]["acc_target_shift"])
    if pert:
        print("\n## the reference against itself: initial weights × (1 + ε·N(0,1)) (bench/da-shift-ref.py --perturb)\n")
        print("| method | ε | seeds | perturbed − unperturbed per seed | mean |diff| | max |diff| |")
        print("|---|---|---|---|---|---|")
        for m, rows in sorted(pert.items()):
            seeds = sorted(s_ for s_ in rows if s_ in ref.get(m, {}))
            if not seeds:
                continue
            diff = [rows[s_][1] - ref[m][s_] for s_ in seeds]
            print("| %s | %g | %s | %s | %.2f | %.2f |" % (m, rows[seeds[0]][0], ",".join(map(str, seeds)),
                  ", ".join("%+.1f" % v for v in diff), np.mean(np.abs(diff)), np.max(np.abs(diff))))


if __name__ == "__main__":
    main()
