"""Reward-model rewards: host-side batching of text pairs onto the mesh for `reward_model.rewards`.

Rows are rounded up to powers of two (and to the mesh's data x fsdp size) and columns to powers of
two, so a long run compiles a handful of programs. Rows are independent: a pair's reward does not
depend on which batch it lands in, beyond float rounding (another batch shape is another program).
On several hosts every process scores the same pairs together (one global batch) and gets all rewards.
"""

from collections.abc import Sequence
import dataclasses

from etils import epath
from gemma import gm
import jax
import numpy as np

from eva_jax.models import architectures
from eva_jax.models import batching
from eva_jax.models import tokenizer as tokenizer_lib
from eva_jax.parallel import distributed
from eva_jax.parallel import mesh as mesh_lib
from eva_jax.parallel import partition
from eva_jax.rewards import base
from eva_jax.rewards import reward_model
from eva_jax.sampling.sampler import bucket

MIN_COLUMNS = 32


@dataclasses.dataclass
class ModelRewardSource:
  """Scores pairs with a reward model's params (as sharded on `mesh`)."""

  model: gm.nn.Transformer
  params: dict
  tokenizer: gm.text.Tokenizer
  mesh: jax.sharding.Mesh
  rules: tuple = partition.DEFAULT_RULES
  batch_size: int = 64  # pairs per device call
  progress: bool | None = None  # None: a bar only when there is more than one batch

  def __post_init__(self):
    if self.model.config.num_embed < self.tokenizer.vocab_size:
      raise ValueError(
        f"tokenizer has {self.tokenizer.vocab_size} tokens; the reward model embeds {self.model.config.num_embed}"
      )
    self._rewards = reward_model.jitted_rewards(self.model, self.mesh, tuple(self.rules))
    self._shards = self.mesh.shape["data"] * self.mesh.shape["fsdp"]

  def score(self, prompts: Sequence[str], responses: Sequence[str]) -> np.ndarray:
    return base.score_in_batches(
      self._score_batch,
      prompts,
      responses,
      batch_size=self.batch_size,
      desc="reward model",
      progress=self.progress,
    )

  def _score_batch(self, prompts: Sequence[str], responses: Sequence[str]) -> np.ndarray:
    return self.score_tokens(batching.make_batch(self.tokenizer, prompts, responses))

  def score_tokens(self, batch: batching.TokenBatch) -> np.ndarray:
    """`[batch.num_real]` rewards of an already tokenized batch (ids of this reward model's tokenizer).

    Any padding layout works: the head reads each row's last real token.
    """
    real = batch.num_real
    rows = -(-bucket(real, 1) // self._shards) * self._shards
    length = batch.tokens.shape[1]
    # Extra rows are all padding; extra right columns leave each row's last real token where it was.
    pad = ((0, rows - real), (0, bucket(length, MIN_COLUMNS) - length))
    place = partition.batch_sharding(self.mesh)
    tokens = jax.device_put(np.pad(batch.tokens[:real], pad), place)
    mask = jax.device_put(np.pad(batch.input_mask[:real], pad), place)
    # to_host: on several hosts the rows live on every process's devices (np.asarray would fail).
    return distributed.to_host(self._rewards(self.params, tokens, mask))[:real]

  def close(self) -> None:
    self.params = None  # frees the device memory once nothing else holds them


def load_model_source(
  checkpoint: epath.PathLike,
  *,
  tokenizer_path: str = "",
  mesh: jax.sharding.Mesh | None = None,
  rules=partition.DEFAULT_RULES,
  batch_size: int = 64,
  progress: bool | None = None,
) -> ModelRewardSource:
  """The source of a checkpoint written by `reward_model.save` (default mesh: data-parallel, all devices)."""
  mesh = mesh if mesh is not None else mesh_lib.make_mesh({"data": -1})
  name = reward_model.read_metadata(checkpoint)["model_name"]
  kind = architectures.ARCHITECTURES[name].tokenizer_kind
  if kind != "embedded" and not tokenizer_path:
    raise ValueError(f"reward model {name!r} needs its Gemma tokenizer: set config.reward.tokenizer")
  tokenizer = tokenizer_lib.load_tokenizer(kind, tokenizer_path or None)
  model, params, _ = reward_model.load(checkpoint, mesh, rules)
  return ModelRewardSource(model, params, tokenizer, mesh, tuple(rules), batch_size, progress)
