"""Held-out evaluation of a policy, the one call the eva loop makes after a round (and --mode=eval).

`evaluate(...)` samples responses to fixed held-out prompts with the given params, scores them with
the run's reward source, and reports the mean reward with a bootstrap CI; given reference params
(the round-0 policy or a checkpoint) it also samples the reference on the same prompts, with the same
rng, and reports the policy's win rate over it as judged by the reward source (ties count half) and
the mean reward difference, each with a CI; given a task, it adds exact match and reward per
difficulty bucket.
"""

from collections.abc import Sequence
import dataclasses

import jax
import numpy as np

from eva_jax.creator import seeds
from eva_jax.evaluation import task_report
from eva_jax.evaluation import winrate
from eva_jax.evaluation.config import ROUND0
from eva_jax.evaluation.config import EvalConfig
from eva_jax.models import params as params_lib
from eva_jax.rewards import nonfinite as nonfinite_lib
from eva_jax.rewards import task_source
from eva_jax.sampling import sampler
from eva_jax.tasks import Task
from eva_jax.tasks import get_task


@dataclasses.dataclass(frozen=True)
class Responses:
  """n responses to each of P prompts with their rewards."""

  texts: tuple[tuple[str, ...], ...]  # [P][n]
  rewards: np.ndarray  # [P, n] float32; NaN = a non-finite reward that was dropped
  truncated: float  # share of responses cut at max_new_tokens

  @property
  def flat_texts(self) -> list[str]:
    return [text for row in self.texts for text in row]


def score(reward_source, prompts: Sequence[str], texts, nonfinite: str = "drop") -> np.ndarray:
  """`[P, n]` float32 rewards of `texts[p][i]` for prompt p; NaN where the policy dropped one."""
  n = len(texts[0])
  repeated = [p for p in prompts for _ in range(n)]
  flat = [t for row in texts for t in row]
  ids = [i for i in range(len(prompts)) for _ in range(n)]
  rewards, keep, _ = nonfinite_lib.score_with_policy(reward_source, repeated, flat, nonfinite, ids)
  return np.where(keep, np.asarray(rewards, np.float32), np.nan).reshape(len(prompts), n)


def _scored(samples: sampler.Samples, prompts: Sequence[str], reward_source, nonfinite: str) -> Responses:
  n = len(samples.text) // len(prompts)
  texts = tuple(tuple(samples.text[p * n : (p + 1) * n]) for p in range(len(prompts)))
  truncated = float(np.mean([reason == "length" for reason in samples.finish_reason]))
  return Responses(texts, score(reward_source, prompts, texts, nonfinite), truncated)


@dataclasses.dataclass(frozen=True)
class EvalResult:
  prompts: tuple[str, ...]
  policy: Responses
  reward: winrate.Estimate  # mean policy reward and its CI
  reference: Responses | None = None  # pass it back as `evaluate(reference=...)` to reuse it
  reference_reward: winrate.Estimate | None = None
  win: winrate.WinRate | None = None  # policy vs reference
  task: task_report.TaskReport | None = None

  def metrics(self, prefix: str = "eval") -> dict[str, float]:
    """Flat float scalars for the metrics writer."""
    out = _estimate_metrics(f"{prefix}/reward", self.reward)
    out[f"{prefix}/dropped"] = float(np.isnan(self.policy.rewards).sum())
    out[f"{prefix}/truncated"] = self.policy.truncated
    if self.reference_reward is not None:
      out[f"{prefix}/reference_reward"] = self.reference_reward.value
    if self.win is not None:
      out |= _estimate_metrics(f"{prefix}/win_rate", self.win.win_rate)
      out |= _estimate_metrics(f"{prefix}/reward_diff", self.win.reward_diff)
      out |= {f"{prefix}/{k}": float(getattr(self.win, k)) for k in ("wins", "ties", "losses")}
    if self.task is not None:
      out |= self.task.metrics(prefix)
    return out

  def summary(self) -> str:
    """Readable lines: reward, win rate, then the task table."""
    rows, n = self.policy.rewards.shape
    lines = [f"held-out: {rows} prompts x {n} responses; mean reward {_interval(self.reward, 1, '.3f')}"]
    if self.win is not None:
      w = self.win
      lines.append(
        f"vs reference (mean reward {self.reference_reward.value:.3f}): win rate "
        f"{_interval(w.win_rate, 100, '.1f')}% ({w.wins} wins, {w.ties} ties, {w.losses} losses); "
        f"reward difference {_interval(w.reward_diff, 1, '+.3f')}"
      )
    if self.task is not None:
      lines.append(self.task.table())
    return "\n".join(lines)

  def records(self) -> list[dict]:
    """One JSON-ready row per (prompt, sample): texts and rewards of the policy and the reference."""
    out = []
    for p, prompt in enumerate(self.prompts):
      for i, text in enumerate(self.policy.texts[p]):
        row = {
          "prompt": prompt,
          "sample": i,
          "response": text,
          "reward": _json_float(self.policy.rewards[p, i]),
        }
        if self.reference is not None:
          row["reference_response"] = self.reference.texts[p][i]
          row["reference_reward"] = _json_float(self.reference.rewards[p, i])
        out.append(row)
    return out


def _estimate_metrics(name: str, estimate: winrate.Estimate) -> dict[str, float]:
  return {name: estimate.value, f"{name}_ci_low": estimate.low, f"{name}_ci_high": estimate.high}


def _interval(estimate: winrate.Estimate, scale: float, spec: str) -> str:
  value, low, high = (format(scale * x, spec) for x in (estimate.value, estimate.low, estimate.high))
  return f"{value} [{low}, {high}] ({100 * estimate.confidence:g}% CI)"


def _json_float(x) -> float | None:
  return float(x) if np.isfinite(x) else None


def evaluate(
  model,
  params,
  tokenizer,
  prompts: Sequence[str],
  reward_source,
  sampling: sampler.SamplingConfig,
  rng: jax.Array,
  mesh: jax.sharding.Mesh | None = None,
  *,
  reference_params=None,
  reference: Responses | None = None,
  task: Task | None = None,
  nonfinite: str = "drop",
  tie_tolerance: float = 0.0,
  bootstrap: int = 1000,
  confidence: float = 0.95,
  seed: int = 0,
  progress: bool | None = None,
) -> EvalResult:
  """Evaluates `params` on `prompts`; see the module docstring.

  The reference is sampled with the same `rng` as the policy (common random numbers: identical params
  give identical responses, all ties, even when sampling). Instead of `reference_params`, pass an
  earlier result's `reference` (same prompts, sampling, rng and reward source) to skip resampling a
  reference that does not change between rounds. `nonfinite` is the reward source's NaN/inf policy
  ("drop": those responses leave the averages and their pairs leave the win rate; "fail": raise).
  """
  if reference_params is not None and reference is not None:
    raise ValueError("pass reference_params or reference responses, not both")
  shape = (len(prompts), sampling.num_samples)
  if reference is not None and reference.rewards.shape != shape:
    raise ValueError(
      f"reference rewards {reference.rewards.shape} do not pair with {shape} (prompts, samples)"
    )
  stats = dict(num_resamples=bootstrap, seed=seed, confidence=confidence)

  def respond(p) -> Responses:
    samples = sampler.sample(model, p, tokenizer, list(prompts), sampling, rng, mesh=mesh, progress=progress)
    return _scored(samples, prompts, reward_source, nonfinite)

  policy = respond(params)
  if reference_params is not None:
    reference = respond(reference_params)
  report = None
  if task is not None:
    repeated = [p for p in prompts for _ in range(sampling.num_samples)]
    # Per-bucket task rewards are the held-out task's own (graded) ones when the run is rewarded by a
    # task, which may be another (e.g. a binary training reward); a reward model's are its own.
    own = isinstance(reward_source, task_source.TaskRewardSource)
    report = task_report.report(
      task, repeated, policy.flat_texts, None if own else policy.rewards.reshape(-1)
    )
  return EvalResult(
    prompts=tuple(prompts),
    policy=policy,
    reward=winrate.bootstrap_mean(policy.rewards, **stats),
    reference=reference,
    reference_reward=None if reference is None else winrate.bootstrap_mean(reference.rewards, **stats),
    win=None
    if reference is None
    else winrate.win_rate(policy.rewards, reference.rewards, tie_tolerance=tie_tolerance, **stats),
    task=report,
  )


def heldout_task(cfg: EvalConfig) -> Task | None:
  return get_task(cfg.task) if cfg.task else None


def heldout_prompts(cfg: EvalConfig) -> list[str]:
  """The held-out prompts: `cfg.prompts_path` (JSONL or CSV, malformed lines fail) or the task's set."""
  if not cfg.prompts_path:
    return get_task(cfg.task).eval_prompts(cfg.per_bucket)
  kind = "csv" if cfg.prompts_path.endswith(".csv") else "jsonl"
  return seeds.load_file(cfg.prompts_path, kind, cfg.prompts_field, on_malformed="fail").prompts


def load_reference(spec: str, round0_params, model, shardings):
  """The reference params `config.eval.reference` names: ROUND0, a params checkpoint, or "" (None)."""
  if not spec:
    return None
  if spec == ROUND0:
    return round0_params
  return params_lib.restore_params(spec, model, shardings)
