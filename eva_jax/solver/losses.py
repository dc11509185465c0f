"""Preference losses on sequence log-probs: DPO, conservative DPO, IPO, SimPO, ORPO and SPPO.

Every loss is a pure function of a `PairLogps` (B pairs) and its hyper-parameters, returning the
per-pair loss `[B]` and per-pair metrics `[B]`; the train step takes masked means, so padding rows
and micro-batching never change the result. Notation: pi = policy, ref = frozen reference, c/r =
chosen/rejected, sums of response-token log-probs unless "avg" (divided by response length).

Numerics: `log sigmoid` is `jax.nn.log_sigmoid` (no overflow at any margin), and ORPO's log-odds
use `log(-expm1(x))`, finite for every average log-prob below 0.
"""

from collections.abc import Callable
import dataclasses

import flax
import jax
import jax.numpy as jnp

Metrics = dict[str, jax.Array]


@flax.struct.dataclass
class PairLogps:
  """Per-pair `[B]` float32 sequence log-probs and response lengths (tokens)."""

  policy_chosen: jax.Array
  policy_rejected: jax.Array
  ref_chosen: jax.Array  # ignored by the reference-free losses (SimPO, ORPO)
  ref_rejected: jax.Array
  len_chosen: jax.Array
  len_rejected: jax.Array

  @property
  def avg_chosen(self) -> jax.Array:
    return self.policy_chosen / jnp.maximum(self.len_chosen, 1)

  @property
  def avg_rejected(self) -> jax.Array:
    return self.policy_rejected / jnp.maximum(self.len_rejected, 1)


@dataclasses.dataclass(frozen=True)
class PreferenceHParams:
  beta: float = 0.05  # DPO/cDPO/IPO/SPPO: strength of the reference anchor; SimPO/ORPO: reward scale
  label_smoothing: float = 0.0  # cDPO: assumed probability that a preference label is flipped
  simpo_gamma: float = 0.5  # SimPO: target reward margin gamma
  orpo_lambda: float = 0.1  # ORPO: weight of the odds-ratio term next to the SFT NLL (TRL's `beta`)
  ipo_per_token: bool = True  # IPO: log-ratios averaged per response token (TRL, the eva authors)


def _reference_metrics(logps: PairLogps, chosen: jax.Array, rejected: jax.Array) -> Metrics:
  return {
    "rewards/chosen": chosen,
    "rewards/rejected": rejected,
    "rewards/margin": chosen - rejected,
    "rewards/accuracy": (chosen > rejected).astype(jnp.float32),
    "logps/chosen": logps.policy_chosen,
    "logps/rejected": logps.policy_rejected,
  }


def _implicit_rewards(logps: PairLogps, beta: float) -> tuple[jax.Array, jax.Array]:
  return beta * (logps.policy_chosen - logps.ref_chosen), beta * (logps.policy_rejected - logps.ref_rejected)


def dpo(logps: PairLogps, hp: PreferenceHParams) -> tuple[jax.Array, Metrics]:
  """DPO (Rafailov et al. 2023, eq. 7) with cDPO label smoothing (Mitchell 2023).

  h = beta * [(pi_c - ref_c) - (pi_r - ref_r)];  loss = -(1 - eps) log sigmoid(h) - eps log sigmoid(-h).
  eps = 0 is plain DPO.
  """
  chosen, rejected = _implicit_rewards(logps, hp.beta)
  h = chosen - rejected
  eps = hp.label_smoothing
  loss = -(1.0 - eps) * jax.nn.log_sigmoid(h) - eps * jax.nn.log_sigmoid(-h)
  return loss, _reference_metrics(logps, chosen, rejected)


def ipo(logps: PairLogps, hp: PreferenceHParams) -> tuple[jax.Array, Metrics]:
  """IPO (Azar et al. 2023, eq. 17): loss = (h - 1/(2 beta))^2, h = (pi_c - ref_c) - (pi_r - ref_r).

  With `ipo_per_token` (the default) each log-ratio is divided by its response length, as TRL's
  DPOTrainer and the eva authors' trainer compute IPO, so a config tuned there carries over; without
  it, h uses summed sequence log-probs as the paper's equation is written (then 1/(2 beta) is a
  target for the whole sequence and beta needs retuning with the response length).
  """
  chosen, rejected = _implicit_rewards(logps, hp.beta)
  ratio_c = logps.policy_chosen - logps.ref_chosen
  ratio_r = logps.policy_rejected - logps.ref_rejected
  if hp.ipo_per_token:
    ratio_c = ratio_c / jnp.maximum(logps.len_chosen, 1)
    ratio_r = ratio_r / jnp.maximum(logps.len_rejected, 1)
  h = ratio_c - ratio_r
  return (h - 1.0 / (2.0 * hp.beta)) ** 2, _reference_metrics(logps, chosen, rejected)


def sppo(logps: PairLogps, hp: PreferenceHParams) -> tuple[jax.Array, Metrics]:
  """SPPO with hard labels (Wu et al. 2024, eq. 4.5 with P(y_w > pi) = 1, P(y_l > pi) = 0; eta = 1/beta).

  loss = (a - 1/(2 beta))^2 + (b + 1/(2 beta))^2 with a = pi_c - ref_c, b = pi_r - ref_r; TRL's
  `sppo_hard`. Not the eva/SPPO authors' trainer: theirs takes soft win probabilities p_w, p_l
  estimated from the reward model, ((a - (p_w - 0.5)/beta)^2 + (b - (p_l - 0.5)/beta)^2) / 2, which
  at hard labels is half this loss. Pairs here carry no win probabilities.
  """
  chosen, rejected = _implicit_rewards(logps, hp.beta)
  a = logps.policy_chosen - logps.ref_chosen
  b = logps.policy_rejected - logps.ref_rejected
  target = 1.0 / (2.0 * hp.beta)
  return (a - target) ** 2 + (b + target) ** 2, _reference_metrics(logps, chosen, rejected)


def simpo(logps: PairLogps, hp: PreferenceHParams) -> tuple[jax.Array, Metrics]:
  """SimPO (Meng et al. 2024, eq. 6): -log sigmoid(beta avg_c - beta avg_r - gamma); no reference."""
  chosen, rejected = hp.beta * logps.avg_chosen, hp.beta * logps.avg_rejected
  loss = -jax.nn.log_sigmoid(chosen - rejected - hp.simpo_gamma)
  return loss, _reference_metrics(logps, chosen, rejected)


def log_odds(avg_logp: jax.Array) -> jax.Array:
  """log(p / (1 - p)) for p = exp(avg_logp) < 1, stable as p -> 1 (clipped just below it)."""
  x = jnp.minimum(avg_logp, -1e-6)
  return x - jnp.log(-jnp.expm1(x))


def orpo(logps: PairLogps, hp: PreferenceHParams) -> tuple[jax.Array, Metrics]:
  """ORPO (Hong et al. 2024, eqs. 6-7): NLL(chosen) + lambda * -log sigmoid(log odds_c - log odds_r).

  Odds use the length-normalised likelihood p = exp(avg log-prob), as in the paper; no reference.
  """
  ratio = log_odds(logps.avg_chosen) - log_odds(logps.avg_rejected)
  odds_term = -jax.nn.log_sigmoid(ratio)
  nll = -logps.avg_chosen
  metrics = _reference_metrics(logps, hp.beta * logps.avg_chosen, hp.beta * logps.avg_rejected)
  metrics |= {"orpo/log_odds_ratio": ratio, "orpo/nll": nll}
  return nll + hp.orpo_lambda * odds_term, metrics


LOSSES: dict[str, Callable[[PairLogps, PreferenceHParams], tuple[jax.Array, Metrics]]] = {
  "dpo": dpo,
  "cdpo": dpo,  # DPO with label_smoothing > 0
  "ipo": ipo,
  "simpo": simpo,
  "orpo": orpo,
  "sppo": sppo,
}
REFERENCE_FREE = ("simpo", "orpo")  # losses that never read the reference log-probs
