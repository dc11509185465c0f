"""Train steps on the real tiny gemma model: sharding and micro-batch invariance, learning, safety."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from eva_jax.models import architectures
from eva_jax.models import batching
from eva_jax.models import params as params_lib
from eva_jax.parallel import mesh as mesh_lib
from eva_jax.sampling import sampler
from eva_jax.solver import losses
from eva_jax.solver import optim
from eva_jax.solver import rloo
from eva_jax.solver import steps
from eva_jax.solver import train_state
from eva_jax.tasks import addition

OPT = optim.OptimizerConfig(learning_rate=1e-3, warmup_frac=0.0, schedule="constant")
# Plain SGD for equivalence tests: the param change is the (clipped) gradient itself, where Adam's
# first step (about lr * sign(g)) would turn float round-off in tiny gradients into visible flips.
SGD = optim.OptimizerConfig(
  name="sgd", learning_rate=1.0, warmup_frac=0.0, schedule="constant", max_grad_norm=0.0
)


def _problems(n, seed=0):
  rng = np.random.default_rng(seed)
  out = []
  while len(out) < n:
    p = addition.random_problem(rng, 2)
    if p.prompt not in {q.prompt for q in out}:
      out.append(p)
  return out


def _wrong(p):
  return addition.Problem((*p.operands[:-1], p.operands[-1] + 3), p.template).answer


def _copy(tree):
  return jax.tree.map(jnp.copy, tree)


def _setup(model, params, mesh, *, total_steps=100, opt=OPT, with_ref=False, num_micro=1):
  optimizer = optim.make_optimizer(opt)
  psh = params_lib.shardings_for(model, mesh)
  params = jax.device_put(_copy(params), psh)
  shardings = train_state.state_shardings(optimizer, psh, mesh, with_ref=with_ref)
  state = train_state.create_train_state(
    params, optimizer, shardings, total_steps=total_steps, ref_params=params if with_ref else None
  )
  settings = steps.StepSettings(model, opt, shardings, mesh, num_micro=num_micro)
  return state, settings


@pytest.fixture(scope="module")
def pairs(tokenizer, tiny_model, tiny_params, mesh1):
  problems = _problems(8)
  batch = steps.pair_batch(
    tokenizer, [p.prompt for p in problems], [p.answer for p in problems], [_wrong(p) for p in problems]
  )
  return steps.with_reference_logps(tiny_model, tiny_params, batch, mesh1)


def _rloo_batch(tokenizer, k=2, groups=4):
  problems = _problems(groups, seed=1)
  prompts = [p.prompt for p in problems for _ in range(k)]
  responses = [p.answer if i % 2 else _wrong(p)[: 16 + i] for i, p in enumerate(problems * k)]
  rewards = [addition.reward(q, r) for q, r in zip(prompts, responses)]
  return steps.sequence_batch(batching.make_batch(tokenizer, prompts, responses), rewards=rewards)


def _run(step_factory, state, batch):
  step = step_factory
  new_state, metrics = step(state, batch, jax.random.key(0))
  return jax.device_get(new_state.params), {k: float(v) for k, v in metrics.items()}


def _check_sharded_step_equals_single_device(tokenizer, model, params, mesh1, pairs, kind):
  mesh8 = mesh_lib.make_mesh({"data": 2, "fsdp": 2, "tensor": 2})
  results = []
  for mesh in (mesh1, mesh8):
    state, settings = _setup(model, params, mesh, opt=SGD, with_ref=kind == "rloo", num_micro=2)
    if kind == "dpo":
      step, batch = steps.make_preference_step(settings, "dpo", losses.PreferenceHParams(beta=0.1)), pairs
    else:
      step, batch = steps.make_rloo_step(settings, rloo.RlooHParams(k=2, beta=0.1)), _rloo_batch(tokenizer)
    results.append(_run(step, state, batch))
  (p1, m1), (p8, m8) = results
  assert m1["loss"] != 0 and m1["grad_norm"] > 0
  for key in ("loss", "grad_norm", "tokens"):
    np.testing.assert_allclose(m8[key], m1[key], rtol=2e-5)
  # Each leaf's update on 8 devices equals the 1-device update to float32 reduction order: within
  # 5e-3 of that leaf's largest update entry (Gemma 4's MoE reaches 8e-4 here; a wrong collective is O(1)).
  p0 = jax.device_get(params)
  off = jax.tree.map(lambda a, b, c: float(np.abs(a - b).max() / max(np.abs(b - c).max(), 1e-12)), p8, p1, p0)
  worst = max(jax.tree.leaves(off))
  print(f"worst update difference / largest update: {worst:.2e}")
  assert worst < 5e-3, off
  moved = jax.tree.leaves(jax.tree.map(lambda a, b: float(np.abs(a - b).max()), p1, p0))
  assert max(moved) > 1e-4  # the step really updated the params


@pytest.mark.devices(8)
@pytest.mark.parametrize("kind", ["dpo", "rloo"])
def test_sharded_step_equals_single_device(tokenizer, tiny_model, tiny_params, mesh1, pairs, kind):
  _check_sharded_step_equals_single_device(tokenizer, tiny_model, tiny_params, mesh1, pairs, kind)


@pytest.mark.devices(8)
@pytest.mark.parametrize("kind", ["dpo", "rloo"])
@pytest.mark.parametrize("name", ["tiny_gemma4", "tiny_gemma4_moe"])
def test_gemma4_sharded_step_equals_single_device(tokenizer, mesh1, name, kind):
  # Gemma 4's own modules: per-layer inputs and KV-sharing layers (dense), routed experts (MoE).
  model = architectures.build_model(name)
  params = params_lib.init_params(model, jax.random.key(0), params_lib.shardings_for(model, mesh1))
  pairs = None
  if kind == "dpo":
    problems = _problems(8)
    batch = steps.pair_batch(
      tokenizer, [p.prompt for p in problems], [p.answer for p in problems], [_wrong(p) for p in problems]
    )
    pairs = steps.with_reference_logps(model, params, batch, mesh1)
  _check_sharded_step_equals_single_device(tokenizer, model, params, mesh1, pairs, kind)


def test_one_micro_batch_of_8_equals_8_of_1(tiny_model, tiny_params, mesh1, pairs):
  results = []
  for num_micro in (1, 8):
    state, settings = _setup(tiny_model, tiny_params, mesh1, opt=SGD, num_micro=num_micro)
    step = steps.make_preference_step(settings, "ipo", losses.PreferenceHParams(beta=0.5), nll_weight=0.1)
    results.append(_run(step, state, pairs))
  (p1, m1), (p8, m8) = results
  np.testing.assert_allclose(m8["loss"], m1["loss"], rtol=1e-5)
  np.testing.assert_allclose(m8["rewards/margin"], m1["rewards/margin"], rtol=1e-4, atol=1e-6)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=5e-6, rtol=1e-4), p8, p1)


def test_padding_rows_do_not_change_the_update(tiny_model, tiny_params, mesh1, pairs):
  padded = jax.tree.map(lambda x: np.concatenate([x, x[:4]]), pairs)
  padded = padded.replace(row_mask=np.arange(12) < 8)
  results = []
  for batch in (pairs, padded):
    state, settings = _setup(tiny_model, tiny_params, mesh1, opt=SGD, num_micro=4)
    results.append(
      _run(steps.make_preference_step(settings, "dpo", losses.PreferenceHParams()), state, batch)
    )
  jax.tree.map(
    lambda a, b: np.testing.assert_allclose(a, b, atol=5e-6, rtol=1e-4), results[0][0], results[1][0]
  )


def test_dpo_learns_a_fixed_preference_set(tiny_model, tiny_params, mesh1, pairs):
  state, settings = _setup(tiny_model, tiny_params, mesh1, total_steps=150)
  step = steps.make_preference_step(settings, "dpo", losses.PreferenceHParams(beta=0.1))
  history = []
  for _ in range(150):
    state, metrics = step(state, pairs, jax.random.key(0))
    history.append({k: float(v) for k, v in metrics.items()})
  assert history[0]["rewards/accuracy"] < 0.9 and abs(history[0]["rewards/margin"]) < 1e-3
  assert history[-1]["rewards/accuracy"] == 1.0
  assert history[-1]["loss"] < 0.1 * history[0]["loss"]
  assert int(state.step) == 150


def test_sft_lowers_the_nll_of_the_answers(tokenizer, tiny_model, tiny_params, mesh1):
  problems = _problems(16, seed=2)
  tb = batching.make_batch(tokenizer, [p.prompt for p in problems], [p.answer for p in problems])
  batch = steps.sequence_batch(tb)
  state, settings = _setup(
    tiny_model, tiny_params, mesh1, opt=OPT.__class__(learning_rate=3e-3, warmup_frac=0.0)
  )
  step = steps.make_sft_step(settings)
  first = None
  for _ in range(40):
    state, metrics = step(state, batch, jax.random.key(0))
    first = float(metrics["nll"]) if first is None else first
  assert float(metrics["loss"]) < 0.5 * first
  np.testing.assert_allclose(first, np.log(512), rtol=0.1)  # untrained: about uniform over the vocab


def _digit_share(text: str) -> float:
  return sum(c.isdigit() for c in text) / max(len(text), 1)


def test_rloo_raises_mean_reward_on_a_sampled_bandit(tokenizer, tiny_model, tiny_params, mesh1):
  """Reward = share of digits in a sampled 4-token answer; RLOO on real samples pushes it up."""
  k, prompts = 4, [p.prompt for p in _problems(8, seed=3)]
  opt = optim.OptimizerConfig(learning_rate=1e-2, warmup_frac=0.0, schedule="constant")
  state, settings = _setup(tiny_model, tiny_params, mesh1, opt=opt, with_ref=True)
  step = steps.make_rloo_step(settings, rloo.RlooHParams(k=k, beta=0.01))
  config = sampler.SamplingConfig(
    num_samples=k, max_new_tokens=4, temperature=1.0, top_p=1.0, max_cache_length=64
  )
  means = []
  for i in range(30):
    samples = sampler.sample(
      tiny_model, state.params, tokenizer, prompts, config, jax.random.key(i), progress=False
    )
    rewards = np.array([_digit_share(t) for t in samples.text])
    prompt_ids = batching.encode_prompts(tokenizer, [prompts[j] for j in samples.prompt_index])
    response_ids = [row[:n].tolist() for row, n in zip(samples.tokens, samples.lengths)]
    batch = steps.sequence_batch(batching.layout(prompt_ids, response_ids), rewards=rewards)
    state, metrics = step(state, batch, jax.random.key(i))
    means.append(float(metrics["reward/mean"]))
    np.testing.assert_allclose(means[-1], rewards.mean(), rtol=1e-5)
  assert np.mean(means[-5:]) > np.mean(means[:5]) + 0.2, means


def test_bfloat16_params_keep_float32_optimizer_state(tiny_params, mesh1, pairs):
  model = architectures.build_model("tiny", "bfloat16")
  params = jax.tree.map(lambda x: x.astype(jnp.bfloat16), tiny_params)
  state, settings = _setup(model, params, mesh1)
  assert {x.dtype for x in jax.tree.leaves(state.params)} == {jnp.dtype(jnp.bfloat16)}
  moments = [x for x in jax.tree.leaves(state.opt_state) if x.ndim > 0]
  assert moments and {x.dtype for x in moments} == {jnp.dtype(jnp.float32)}
  new, metrics = steps.make_preference_step(settings, "dpo", losses.PreferenceHParams())(
    state, pairs, jax.random.key(0)
  )
  assert {x.dtype for x in jax.tree.leaves(new.params)} == {jnp.dtype(jnp.bfloat16)}
  assert np.isfinite(float(metrics["loss"]))


def test_nonfinite_step_is_skipped_and_params_survive(tiny_model, tiny_params, mesh1, pairs):
  state, settings = _setup(tiny_model, tiny_params, mesh1)
  step = steps.make_preference_step(settings, "dpo", losses.PreferenceHParams())
  before = jax.device_get(state.params)
  poisoned = pairs.replace(ref_logps=np.where(np.arange(8)[:, None] == 3, np.nan, pairs.ref_logps))
  state, metrics = step(state, poisoned, jax.random.key(0))
  assert float(metrics["skipped_nonfinite"]) == 1.0
  jax.tree.map(np.testing.assert_array_equal, jax.device_get(state.params), before)
  state, metrics = step(state, pairs, jax.random.key(0))
  assert float(metrics["skipped_nonfinite"]) == 0.0 and np.isfinite(float(metrics["loss"]))


@pytest.mark.devices(4)
def test_batch_shape_errors(tokenizer, tiny_model, tiny_params, pairs):
  mesh4 = mesh_lib.make_mesh({"data": 4}, devices=jax.devices()[:4])
  state, settings = _setup(tiny_model, tiny_params, mesh4, num_micro=4)
  step = steps.make_preference_step(settings, "dpo", losses.PreferenceHParams())
  with pytest.raises(ValueError, match="micro-batch of 2 rows does not divide over 4 devices"):
    step(state, pairs, jax.random.key(0))
  with pytest.raises(ValueError, match="does not split into 3 micro-batches"):
    steps.check_batch(8, 3, 1, mesh4)
  tb = batching.make_batch(tokenizer, ["Add 1 and 2."] * 2, ["Reversed sum: 3"] * 2)
  with pytest.raises(ValueError, match=r"non-finite rewards at rows \[1\]"):
    steps.sequence_batch(tb, rewards=[1.0, float("nan")])
  with pytest.raises(ValueError, match="got \\(3,\\) rewards for 2 rows"):
    steps.sequence_batch(tb, rewards=[1.0, 0.0, 0.0])
