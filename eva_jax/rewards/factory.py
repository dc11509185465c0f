"""`make_reward_source(config.reward)`: the one place that turns a reward config into a source."""

import jax

from eva_jax.parallel import partition
from eva_jax.rewards import base
from eva_jax.rewards import model_source
from eva_jax.rewards import remote
from eva_jax.rewards import task_source
from eva_jax.rewards.config import RewardConfig
from eva_jax.tasks import get_task


def make_reward_source(
  cfg: RewardConfig,
  *,
  mesh: jax.sharding.Mesh | None = None,
  rules=partition.DEFAULT_RULES,
  progress: bool | None = None,
) -> base.RewardSource:
  """The source `cfg.kind` names. A reward model is loaded onto `mesh` (default: data-parallel, all devices).

  `progress`: None shows a bar only for jobs of more than one batch; True/False force it.
  """
  if cfg.kind == "task":
    return task_source.TaskRewardSource(get_task(cfg.task), batch_size=cfg.batch_size, progress=progress)
  if cfg.kind == "model":
    return model_source.load_model_source(
      cfg.checkpoint,
      tokenizer_path=cfg.tokenizer,
      mesh=mesh,
      rules=rules,
      batch_size=cfg.batch_size,
      progress=progress,
    )
  if cfg.kind == "remote":
    return remote.RemoteRewardSource(
      cfg.url,
      protocol=cfg.protocol,
      model=cfg.model,
      query_template=cfg.query_template,
      api_key_env=cfg.api_key_env,
      batch_size=cfg.batch_size,
      max_concurrency=cfg.max_concurrency,
      timeout_s=cfg.timeout_s,
      max_retries=cfg.max_retries,
      backoff_s=cfg.backoff_s,
      progress=progress,
    )
  raise ValueError(f"unknown reward kind {cfg.kind!r}")
