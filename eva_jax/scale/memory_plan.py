"""Per-device memory plan of a run on a target topology, from shapes alone (nothing is allocated).

`python -m eva_jax.main --config=configs/gemma2_9b.py --workdir=/tmp/plan --mode=plan
--plan_topology=v5e-64` prints what one device holds when the config runs on 64 v5e chips, without
those chips, the checkpoint or the tokenizer. The mesh is the config's `mesh.shape` resolved for the
topology's device count; shardings are the run's own (`partition.param_shardings`,
`train_state.state_shardings`) built over a `jax.sharding.AbstractMesh`, so shard shapes are exactly
what the run would get.

Exact, from abstract shapes:
  params            param dtype, sharded by the partition rules
  optimizer state   `optimizer.init` of float32 params (AdamW: 2 moments), sharded like the params
  gradients         the float32 accumulator (sharded like the params) + one micro-batch's gradients
                    in the param dtype
  reference params  RLOO keeps the reference in the train state (offline losses precompute it)
  KV cache          `init_cache` for R = bucket(sample_batch_size) x num_samples rows of
                    max_cache_length, rows over data x fsdp, KV heads over the rule's axis; the
                    prefill cache of bucket(sample_batch_size) rows is live while it is repeated;
                    Gemma 4 layers that read an earlier layer's cache hold none of their own
Estimated (no rematerialisation; XLA may fuse some of it away, so this leans high):
  train activations per device = rows x L x layers x per-token-layer bytes
      + rows x L x L (attention mask) + 3 x rows x C x V x 4 (one float32 logits chunk, its
      log-softmax and gradient)
    rows = batch_size / micro_batches (x2 for chosen + rejected) / (data x fsdp), L =
    max_prompt_len + max_response_len rounded up to 16, C = min(logprob_chunk,
    max_response_len) (only the response columns are unembedded); per token and layer,
    in the activation (= param) dtype: 8 D (residual stream, norms, block outputs)
    + (2 H + 2 K) head_dim / t_heads (q, k, v, attention output) + 3 H L / t_heads (logits,
    soft-capped logits, probabilities) + 4 F / t_mlp (gate, up, activation, product) + 4 P
    (a Gemma 4 E layer's per-layer input, its gate, activation and product), summed over the
    layers with each layer's own widths (`architectures.layer_widths`: Gemma 4's global layers
    have wider keys, fewer KV heads and may use the keys as values, its KV-sharing layers may
    have a wider MLP), where t_*
    is the mesh size of the axis the rules give that dimension (1 if it does not divide); a
    mixture-of-experts layer (Gemma 4 26B A4B) adds its routed branch: k (2 D + 4 E /
    t_expert_mlp) (each token's k dispatched copies in and out, and the experts' gate, up,
    activation and product of width E) + N (router logits over N experts), F being the width of
    its dense shared branch.
  update temporaries = float32 params + float32 updates (the optimizer step)
  sampling logits = 3 x R x V x 4 / (data x fsdp) (logits, log-softmax, top-p sort)
  gathered weights = params x (fsdp - 1): the weights FSDP gathers, live together twice: the
      forward pass's gathers are saved for the backward pass (autodiff keeps them; nothing is
      rematerialised), and the decode loop's are loop-invariant, so XLA hoists them out of the
      loop (every program bench.scale_check compiled)
  prefill attention = 2 x Bp x H / t_heads x P x S x 4 / (data x fsdp): one layer's float32
      attention logits and probabilities while the Bp = bucket(sample_batch_size) prompts of up to
      P = max_cache_length - max_new_tokens columns are prefilled (the largest buffers of the
      compiled generate program, bench.scale_check); live instead of the sampling logits
The run's own batch check (`steps.check_batch`: each micro-batch splits over data x fsdp) is
applied too. Peaks: train = params + optimizer + reference + accumulator + max(activations +
gathered weights + micro-batch gradients, update temporaries); sampling = params + gathered weights
+ KV cache + max(sampling logits, prefill attention) (+ optimizer and reference for RLOO, whose train state lives across
sampling). A phase is flagged when it needs more
than `usable_fraction` (default 90%) of the device's memory: XLA needs scratch space too.
"""

from collections.abc import Mapping
import dataclasses
import json
import math
import re

from etils import epath
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from eva_jax import config_fields as fields
from eva_jax.models import architectures
from eva_jax.models import params as params_lib
from eva_jax.parallel import mesh as mesh_lib
from eva_jax.parallel import partition
from eva_jax.sampling import sampler
from eva_jax.solver import config as solver_config
from eva_jax.solver import optim
from eva_jax.solver import steps
from eva_jax.solver import train_state

GIB = 1 << 30
# Accelerator kind -> (memory per JAX device in GiB, topology-suffix units per device). Cloud TPU
# v4/v5p names count TensorCores (two per chip, one JAX device per chip); v5e/v6e names count chips.
_ACCELERATORS = {
  "v4": (32, 2),
  "v5p": (95, 2),
  "v5e": (16, 1),
  "v5litepod": (16, 1),
  "v6e": (32, 1),
  "a100": (80, 1),
  "h100": (80, 1),
  "h200": (140, 1),
}


@dataclasses.dataclass(frozen=True)
class Topology:
  name: str
  num_devices: int
  device_bytes: int  # memory of one device


def topology(name: str) -> Topology:
  """`v5e-64`, `v5litepod-16`, `v5p-128`, `v4-32`, `v6e-8`, `h100-8`, ... or `<devices>x<GiB>` (`64x16`)."""
  custom = re.fullmatch(r"(\d+)x(\d+(?:\.\d+)?)", name)
  if custom:
    devices, gib = int(custom.group(1)), float(custom.group(2))
  else:
    match = re.fullmatch(r"([a-z0-9]+)-(\d+)", name)
    if not match or match.group(1) not in _ACCELERATORS:
      raise ValueError(
        f"unknown topology {name!r}: use <kind>-<size> with kind in {sorted(_ACCELERATORS)}, or 64x16"
      )
    gib, per_device = _ACCELERATORS[match.group(1)]
    size = int(match.group(2))
    if size % per_device:
      raise ValueError(f"topology {name!r}: the size counts TensorCores, a multiple of {per_device}")
    devices = size // per_device
  if devices < 1 or gib <= 0:
    raise ValueError(f"topology {name!r} needs at least one device with memory")
  return Topology(name, devices, int(gib * GIB))


def virtual_mesh(sizes: Mapping[str, int]) -> jax.sharding.AbstractMesh:
  """A mesh of `sizes` (all of mesh_lib.AXES) that no real device backs: for shard arithmetic only."""
  return jax.sharding.AbstractMesh(tuple(sizes[a] for a in mesh_lib.AXES), mesh_lib.AXES)


def sharded_bytes(abstract_tree, sharding_tree, dtype=None) -> int:
  """Bytes one device holds of `abstract_tree` placed by `sharding_tree` (leaves in `dtype` if given)."""
  total = 0
  for leaf, sharding in zip(jax.tree.leaves(abstract_tree), jax.tree.leaves(sharding_tree), strict=True):
    itemsize = np.dtype(dtype or leaf.dtype).itemsize
    total += math.prod(sharding.shard_shape(tuple(leaf.shape))) * itemsize
  return total


def param_bytes(model, sizes: Mapping[str, int], rules=partition.DEFAULT_RULES) -> int:
  """Per-device bytes of `model`'s params on a mesh of `sizes`."""
  abstract = params_lib.abstract_params(model)
  return sharded_bytes(abstract, params_lib.shardings_for(model, virtual_mesh(sizes), rules))


@dataclasses.dataclass(frozen=True)
class Workload:
  """The sizes that set activation and cache memory (from config.solver / config.loop)."""

  solver: solver_config.SolverConfig
  logprob_chunk: int
  sample_batch_size: int
  num_samples: int
  max_cache_length: int
  max_new_tokens: int = 0  # sets the prompt columns a prefill may hold (max_cache_length - this)


def _axis_size(rules, logical: str, dim: int, sizes: Mapping[str, int]) -> int:
  mesh_axis = dict(rules).get(logical)
  return sizes[mesh_axis] if mesh_axis is not None and dim % sizes[mesh_axis] == 0 else 1


def _train_activation_bytes(cfg, work: Workload, sizes, rules, act_bytes: int) -> int:
  solver = work.solver
  shards = sizes["data"] * sizes["fsdp"]
  pair_rows = 1 if solver.online else 2
  rows = math.ceil(solver.batch_size // solver.micro_batches * pair_rows / shards)
  length = -(-(solver.max_prompt_len + solver.max_response_len) // 16) * 16
  t_heads = _axis_size(rules, "heads", cfg.num_heads, sizes)
  per_token = 0.0  # summed over layers, in values
  for layer in architectures.layer_widths(cfg):
    per_token += (
      8 * cfg.embed_dim
      + (2 * cfg.num_heads + layer.kv_projections * layer.kv_heads) * layer.head_dim / t_heads
      + 3 * cfg.num_heads * length / t_heads
      + 4 * layer.mlp / _axis_size(rules, "mlp", layer.mlp, sizes)
      + 4 * layer.per_layer_input
      + _routed_branch_width(cfg, sizes, rules)
    )
  layers = rows * length * per_token * act_bytes
  chunk = min(work.logprob_chunk, solver.max_response_len)  # only response columns are unembedded
  return int(layers + rows * length * length + 3 * rows * chunk * cfg.num_embed * 4)


def _routed_branch_width(cfg, sizes, rules) -> float:
  """Per-token activations of a mixture-of-experts layer's routed branch (0 for dense models)."""
  if not getattr(cfg, "enable_moe", False):
    return 0.0
  t_expert = _axis_size(rules, "expert_mlp", cfg.expert_dim, sizes)
  return cfg.top_k_experts * (2 * cfg.embed_dim + 4 * cfg.expert_dim / t_expert) + cfg.num_experts


def _cache_bytes(model, work: Workload, sizes, rules, dtype) -> tuple[int, int]:
  """(per-device KV-cache bytes of the sampler's rows, sampling-logits bytes)."""
  shards = sizes["data"] * sizes["fsdp"]
  prompts = -(-sampler.bucket(work.sample_batch_size, 1) // shards) * shards
  rows = prompts * work.num_samples
  cfg = model.config
  # A Gemma 4 layer that reads an earlier layer's cache gets one from init_cache too, but only
  # ever holds the owner's keys and values: the compiled programs keep no copy of it.
  owned = [f"layer_{i}" for i, layer in enumerate(architectures.layer_widths(cfg)) if layer.owns_cache]
  total = 0
  for batch in (prompts, rows):  # the prefill cache is live while it is repeated n times
    cache = jax.eval_shape(lambda b=batch: cfg.init_cache(b, dtype, cache_length=work.max_cache_length))
    for leaf in jax.tree.leaves({name: cache[name] for name in owned}):
      per = leaf.size // shards * leaf.dtype.itemsize
      if leaf.ndim == 4:  # [B, S, K, head_dim] keys and values: K over the rule's axis
        per //= _axis_size(rules, "kv_heads", leaf.shape[2], sizes)
      total += per
  return total, 3 * rows * cfg.num_embed * 4 // shards


def _prefill_attention_bytes(cfg, work: Workload, sizes, rules) -> int:
  shards = sizes["data"] * sizes["fsdp"]
  prompts = -(-sampler.bucket(work.sample_batch_size, 1) // shards)
  columns = max(1, work.max_cache_length - work.max_new_tokens)
  heads = cfg.num_heads // _axis_size(rules, "heads", cfg.num_heads, sizes)
  return 2 * prompts * heads * columns * work.max_cache_length * 4


@dataclasses.dataclass(frozen=True)
class Plan:
  topology: Topology
  mesh: dict  # axis -> size
  model: str
  num_params: int
  bytes: dict  # component -> per-device bytes
  usable_fraction: float
  problems: tuple[str, ...] = ()  # settings the run itself would refuse on this mesh

  @property
  def usable_bytes(self) -> int:
    return int(self.topology.device_bytes * self.usable_fraction)

  def phase_peaks(self) -> dict:
    b = self.bytes
    resident = b["params"] + b["optimizer state"] + b["reference params"]
    train = resident + b["gradient accumulator"]
    backward = b["train activations"] + b["gathered weights"] + b["micro-batch gradients"]
    train += max(backward, b["update temporaries"])
    sampling = b["params"] + b["gathered weights"] + b["KV cache"]
    sampling += max(b["sampling logits"], b["prefill attention"])
    if b["reference params"]:  # online RLOO: the train state outlives sampling
      sampling += b["optimizer state"] + b["reference params"]
    return {"train step": train, "sampling": sampling}

  def warnings(self) -> list[str]:
    return list(self.problems) + [
      f"{phase} needs {peak / GIB:.2f} GiB per device, more than {self.usable_fraction:.0%} of "
      f"{self.topology.device_bytes / GIB:.0f} GiB: it will not fit"
      for phase, peak in self.phase_peaks().items()
      if peak > self.usable_bytes
    ]

  @property
  def fits(self) -> bool:
    return not self.warnings()

  def figures(self) -> dict:
    """The plan as JSON-ready numbers (bytes per device)."""
    return {
      "topology": self.topology.name,
      "num_devices": self.topology.num_devices,
      "device_bytes": self.topology.device_bytes,
      "mesh": self.mesh,
      "model": self.model,
      "num_params": self.num_params,
      "bytes": self.bytes,
      "peaks": self.phase_peaks(),
      "fits": self.fits,
      "warnings": self.warnings(),
    }

  def report(self) -> str:
    lines = [
      f"memory plan: {self.model} ({self.num_params:,} params) on {self.topology.name}: "
      f"{self.topology.num_devices} devices x {self.topology.device_bytes / GIB:.0f} GiB, mesh {self.mesh}",
      f"{'per device':<24} {'GiB':>8}",
    ]
    lines += [f"{name:<24} {value / GIB:8.3f}" for name, value in self.bytes.items()]
    lines += [f"{'peak: ' + phase:<24} {peak / GIB:8.3f}" for phase, peak in self.phase_peaks().items()]
    lines += [f"WARNING: {w}" for w in self.warnings()] or [
      f"fits: every phase within {self.usable_fraction:.0%} of device memory"
    ]
    return "\n".join(lines)


def make_plan(
  model_name: str,
  param_dtype: str,
  mesh_shape: Mapping[str, int],
  rules,
  topo: Topology,
  work: Workload,
  usable_fraction: float = 0.9,
) -> Plan:
  """The per-device plan of `model_name` on `topo` with the mesh `mesh_shape` (-1 fills)."""
  sizes = dict(zip(mesh_lib.AXES, mesh_lib.resolve_mesh_shape(mesh_shape, topo.num_devices)))
  mesh = virtual_mesh(sizes)
  model = architectures.build_model(model_name, param_dtype)
  dtype = architectures.DTYPES[param_dtype]
  abstract = params_lib.abstract_params(model)
  shardings = params_lib.shardings_for(model, mesh, rules)
  optimizer = optim.make_optimizer(work.solver.optimizer)
  state_shardings = train_state.state_shardings(optimizer, shardings, mesh)
  opt_abstract = jax.eval_shape(lambda p: optimizer.init(train_state.as_float32(p)), abstract)
  params = sharded_bytes(abstract, shardings)
  params32 = sharded_bytes(abstract, shardings, jnp.float32)
  cache, logits = _cache_bytes(model, work, sizes, rules, dtype)
  components = {
    "params": params,
    "optimizer state": sharded_bytes(opt_abstract, state_shardings.opt_state),
    "gradient accumulator": params32,
    "micro-batch gradients": params,
    "reference params": params if work.solver.online else 0,
    "train activations": _train_activation_bytes(model.config, work, sizes, rules, np.dtype(dtype).itemsize),
    "update temporaries": 2 * params32,
    "KV cache": cache,
    "gathered weights": params * (sizes["fsdp"] - 1),
    "sampling logits": logits,
    "prefill attention": _prefill_attention_bytes(model.config, work, sizes, rules),
  }
  num_params = sum(leaf.size for leaf in jax.tree.leaves(abstract))
  problems = []
  try:  # the train step's own check: micro-batches of whole groups, split over data x fsdp
    steps.check_batch(
      work.solver.batch_size, work.solver.micro_batches, work.solver.rloo.k if work.solver.online else 1, mesh
    )
  except ValueError as e:
    problems.append(f"solver.batch_size {work.solver.batch_size}: {e}")
  return Plan(topo, sizes, model_name, num_params, components, usable_fraction, tuple(problems))


def plan_for_config(config: ml_collections.ConfigDict, topology_name: str) -> Plan:
  """The plan of a run config on `topology_name`; needs no checkpoint or tokenizer path.

  Raises:
    ValueError (ConfigError for config fields): naming what is wrong.
  """
  topo = topology(topology_name)
  mesh_shape = dict(fields.get(config, "mesh.shape", (dict, ml_collections.ConfigDict)))
  work = Workload(
    solver=solver_config.parse(config),
    logprob_chunk=fields.integer(config, "model.logprob_chunk", low=1),
    sample_batch_size=fields.integer(config, "loop.sample_batch_size", low=1),
    num_samples=fields.integer(config, "loop.num_samples", low=1),
    max_cache_length=fields.integer(config, "loop.max_cache_length", low=2),
    max_new_tokens=fields.integer(config, "loop.max_new_tokens", low=1),
  )
  rules = tuple(tuple(rule) for rule in fields.get(config, "mesh.rules", (tuple, list)))
  fields.wrap("mesh.rules", lambda: partition.validate_rules(rules))
  return make_plan(
    fields.choice(config, "model.name", list(architectures.ARCHITECTURES)),
    fields.choice(config, "model.param_dtype", list(architectures.DTYPES)),
    fields.wrap(
      "mesh.shape",
      lambda: dict(zip(mesh_lib.AXES, mesh_lib.resolve_mesh_shape(mesh_shape, topo.num_devices))),
    ),
    rules,
    topo,
    work,
  )


def run(config: ml_collections.ConfigDict, topology_name: str, workdir: epath.PathLike) -> Plan:
  """`--mode=plan`: prints the plan and writes its figures to `<workdir>/memory_plan.json`."""
  plan = plan_for_config(config, topology_name)
  print(plan.report())
  workdir = epath.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  (workdir / "memory_plan.json").write_text(json.dumps(plan.figures(), indent=1))
  return plan
