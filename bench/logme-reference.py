"""
Reference numbers for graft's transferability scores (test/choose/scores.test.ts records them).

NumPy transcriptions of the published reference implementations, run on small deterministic fixtures
whose features both this script and the TypeScript test build from the same formula:

- LogME: github thuml/LogME, LogME.py, `LogME._fit_fixed_point` (the default `_fit`): thin SVD (for N > D
  from the SVD of FᵀF, keeping singular values > 1e-10, as its `truncated_svd`; else `np.linalg.svd(F,
  full_matrices=False)`), then per target at most 11 fixed-point updates of alpha and beta with relative
  tolerance 1e-3 on alpha/beta, evidence per sample, mean over targets (one-hot classes or regression columns).
- SFDA: github TencentARC/SFDA, metrics.py `SFDA_Score` with utils.py `iterative_A`: shrunk Fisher
  discriminant (generalised eigenproblem Sb v = λ Sw v solved here by Cholesky whitening with NumPy's eigh),
  softened probabilities, ConfMix towards the other classes' mean, second discriminant, mean true-class
  probability.

Usage: python3 bench/logme-reference.py          (needs NumPy; no SciPy, numba or torch)
Prints one JSON object: the fixtures' parameters and each score.
"""
import json
import numpy as np


def features(n, d, classes, sep):
    i = np.arange(n).reshape(-1, 1).astype(np.float64)
    j = np.arange(d).reshape(1, -1).astype(np.float64)
    y = np.arange(n) % classes
    f = np.sin(1.7 * i + 0.3 * j) + np.cos(0.11 * i * j)
    f = f + sep * (np.arange(d).reshape(1, -1) == y.reshape(-1, 1))
    return f, y


def regression_targets(n):
    i = np.arange(n).astype(np.float64)
    return np.stack([np.sin(0.5 * i), 0.1 * i - 1.0], axis=1)


def logme(f, y, regression=False):
    f = f.astype(np.float64)
    n, d = f.shape
    if n > d:
        _, s2, vh = np.linalg.svd(f.T @ f)
        s = np.sqrt(s2)
        k = int(np.sum(s > 1e-10))
        s, vh = s[:k], vh[:k]
        u = (f @ vh.T) / s.reshape(1, -1)
    else:
        u, s, _ = np.linalg.svd(f, full_matrices=False)
    sigma = s.reshape(-1, 1) ** 2
    cols = y.shape[1] if regression else int(y.max() + 1)
    ev = []
    for c in range(cols):
        t_ = (y[:, c] if regression else (y == c).astype(np.float64)).reshape(-1, 1)
        x2 = (u.T @ t_) ** 2
        res_x2 = (t_ ** 2).sum() - x2.sum()
        alpha, beta = 1.0, 1.0
        for _ in range(11):
            t = alpha / beta
            gamma = (sigma / (sigma + t)).sum()
            m2 = (sigma * x2 / ((t + sigma) ** 2)).sum()
            res2 = (x2 / ((1 + sigma / t) ** 2)).sum() + res_x2
            alpha = gamma / (m2 + 1e-5)
            beta = (n - gamma) / (res2 + 1e-5)
            if abs(alpha / beta - t) / t <= 1e-3:
                break
        e = (d / 2.0 * np.log(alpha) + n / 2.0 * np.log(beta) - 0.5 * np.sum(np.log(alpha + beta * sigma))
             - beta / 2.0 * res2 - alpha / 2.0 * m2 - n / 2.0 * np.log(2 * np.pi)) / n
        ev.append(float(e))
    return float(np.mean(ev)), ev


def largest_eig(a):
    x = a.sum(axis=1)
    for _ in range(3):
        t = a @ x
        y = t / np.linalg.norm(t, 2)
        t = a @ y
        x = t / np.linalg.norm(t, 2)
    return float(x.T @ a @ y)


def softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def discriminant(x, y, shrinkage=None):
    classes = np.unique(y)
    priors = np.array([np.mean(y == c) for c in classes])
    means = np.stack([x[y == c].mean(axis=0) for c in classes])
    sw = sum(p * np.cov(x[y == c].T, bias=1) for p, c in zip(priors, classes))
    if shrinkage is None:
        shrinkage = max(np.exp(-5 * largest_eig(sw)), 1e-10)
    d = sw.shape[0]
    st = np.cov(x.T, bias=1)
    st = (1 - shrinkage) * st + shrinkage * np.trace(st) / d * np.eye(d)
    sws = (1 - shrinkage) * sw + shrinkage * np.trace(sw) / d * np.eye(d)
    sb = st - sws
    # eigh(sb, sws) by whitening: sws = L Lᵀ, C = L⁻¹ sb L⁻ᵀ, vectors = L⁻ᵀ W
    lo = np.linalg.cholesky(sws)
    li = np.linalg.inv(lo)
    w, v = np.linalg.eigh(li @ sb @ li.T)
    evecs = (li.T @ v)[:, np.argsort(w)[::-1]]
    coef = means @ evecs @ evecs.T
    intercept = -0.5 * np.diag(means @ coef.T) + np.log(priors)
    return softmax(x @ coef.T + intercept), shrinkage


def sfda(x, y):
    x = x.astype(np.float64).copy()
    n = len(y)
    classes = np.unique(y)
    prob, shrinkage = discriminant(x, y)
    prob = np.exp(prob) / np.exp(prob).sum(axis=1, keepdims=True)
    means = np.stack([x[y == c].mean(axis=0) for c in classes])
    others = (means.sum(axis=0, keepdims=True) - means) / (len(classes) - 1)
    for c in range(len(classes)):
        idx = np.where(y == c)[0]
        p = prob[idx, c].reshape(-1, 1)
        x[idx] = p * x[idx] + (1 - p) * others[c]
    prob, _ = discriminant(x, y, shrinkage)
    return float(np.sum(prob[np.arange(n), y]) / n), float(shrinkage)


out = {"numpy": np.__version__, "formula": "f[i,j] = sin(1.7 i + 0.3 j) + cos(0.11 i j) + sep*(j == i % classes); y = i % classes"}
for name, (n, d, c, sep) in {"tall": (60, 8, 3, 1.0), "wide": (20, 50, 4, 1.0), "tall_nosep": (60, 8, 3, 0.0)}.items():
    f, y = features(n, d, c, sep)
    score, per = logme(f, y)
    s, lam = sfda(f, y)
    out[name] = {"n": n, "d": d, "classes": c, "sep": sep, "logme": score, "logme_per_class": per, "sfda": s, "sfda_shrinkage": lam}
f, _ = features(40, 6, 2, 0.0)
score, per = logme(f, regression_targets(40), regression=True)
out["regression"] = {"n": 40, "d": 6, "targets": "[sin(0.5 i), 0.1 i - 1]", "logme": score, "logme_per_target": per}
print(json.dumps(out, indent=1))
