"""Selection: which prompts the creator evolves, drawn from their (normalised) informativeness.

`select(weights, k, strategy, rng)` returns indices into the pool, without repeats, deterministic
for a given `rng` state. Prompts whose weight is NaN (never scored) are never selected; when fewer
than `k` prompts are scored, all of them are returned.

  importance_weighted  k draws without replacement, each proportional to weight among those left
                       (successive sampling; Efraimidis-Spirakis keys E/w, E ~ Exp(1), smallest k).
                       Zero-weight prompts come only after every positive one, uniformly among
                       themselves: with min-max weights the least informative prompt weighs 0, and
                       a pool with fewer than k positive weights still yields k prompts.
  greedy               the k largest weights (ties: lower index first)
  stratified           scored prompts ranked by weight and cut into 10 equal strata (deciles); each
                       stratum's share of k (k x its size / n) drawn uniformly from it, the
                       fractional remainders by systematic sampling: every prompt has chance k / n
  uniform              k uniformly without replacement (the ablation)
"""

import math

import numpy as np

STRATEGIES = ("importance_weighted", "greedy", "stratified", "uniform")
NUM_STRATA = 10


def num_selected(num_scored: int, sample_frac: float) -> int:
  """How many of `num_scored` prompts a fraction selects: frac * n rounded half up, at least 1 if any."""
  if num_scored == 0:
    return 0
  return min(num_scored, max(1, math.floor(sample_frac * num_scored + 0.5)))


def _importance_weighted(weights: np.ndarray, eligible: np.ndarray, k: int, rng) -> np.ndarray:
  w = weights[eligible]
  exp = rng.exponential(size=len(w))
  keys = np.full(len(w), np.inf)
  keys[w > 0] = exp[w > 0] / w[w > 0]
  order = np.lexsort((rng.random(len(w)), keys))  # inf keys (zero weight) in random order, last
  return eligible[order[:k]]


def _stratified(weights: np.ndarray, eligible: np.ndarray, k: int, rng) -> np.ndarray:
  ranked = eligible[np.argsort(weights[eligible], kind="stable")]
  strata = [s for s in np.array_split(ranked, NUM_STRATA) if len(s)]
  sizes = np.array([len(s) for s in strata])
  share = k * sizes / sizes.sum()
  quota = np.floor(share).astype(int)
  extra = int(k - quota.sum())
  if extra:
    # Remainders go to strata with probability equal to their fractional shares (systematic
    # sampling: the fractions sum to `extra` and each is < 1), so every scored prompt is selected
    # with probability k / n whatever n is; a uniform choice of strata would not do that.
    fraction = share - quota
    edges = np.cumsum(fraction)
    edges[-1] = extra  # the fractions sum to `extra`; pin float drift so every point lands
    points = rng.random() + np.arange(extra)
    quota[np.searchsorted(edges, points, side="right")] += 1
  picked = [rng.choice(s, size=q, replace=False) for s, q in zip(strata, quota) if q]
  return np.concatenate(picked) if picked else np.zeros(0, np.int64)


def select(weights: np.ndarray, k: int, strategy: str, rng: np.random.Generator) -> np.ndarray:
  """Indices of up to `k` distinct prompts chosen by `strategy` (see module docstring)."""
  if strategy not in STRATEGIES:
    raise ValueError(f"unknown selection strategy {strategy!r}; expected one of {list(STRATEGIES)}")
  weights = np.asarray(weights, np.float64)
  if weights.ndim != 1:
    raise ValueError(f"weights must be 1-D, got shape {weights.shape}")
  if np.any(weights[np.isfinite(weights)] < 0):
    raise ValueError("weights must be >= 0 (normalise the scores first)")
  if k < 0:
    raise ValueError(f"k must be >= 0, got {k}")
  eligible = np.flatnonzero(np.isfinite(weights))
  k = min(k, len(eligible))
  if k == 0:
    return np.zeros(0, np.int64)
  if strategy == "importance_weighted":
    return _importance_weighted(weights, eligible, k, rng)
  if strategy == "greedy":
    return eligible[np.argsort(-weights[eligible], kind="stable")[:k]]
  if strategy == "stratified":
    return _stratified(weights, eligible, k, rng)
  return rng.choice(eligible, size=k, replace=False)
