"""Compile a run's real-size programs on a mesh of devices from abstract shapes, and read XLA's figures.

Nothing is allocated: params and train state are `jax.eval_shape` trees carrying the run's own
shardings, batches are `ShapeDtypeStruct`s of the config's sizes, and each program is
`jax.jit(...).lower(...).compile()`d. On a host with N fake CPU devices
(`--xla_force_host_platform_device_count=N`) this catches, before anyone pays for a slice, what
would go wrong on a pod: an unexpected replication, a full-vocabulary logits tensor, a collective
in the wrong place, a memory plan that is far off.

Per program: XLA's `memory_analysis()` (argument, output, temp, generated-code bytes per device),
`cost_analysis()` FLOPs and bytes accessed, and the collectives of the optimized HLO (count and
result bytes per kind). `full_vocab_arrays` counts HLO arrays that hold a whole sequence's
logits (a dimension equal to the vocabulary and one equal to the full sequence length): the
log-prob code unembeds `model.logprob_chunk` columns at a time, so it must be 0.

CPU buffer assignment is not TPU's or GPU's: XLA:CPU does not rematerialise to fit a memory
limit and fuses less, so its temp bytes are an upper bound of what a TPU needs, and the
collective counts are those of the SPMD partitioner (the same pass on every backend).
"""

import dataclasses
import re
import time

from gemma import gm
import jax
import jax.numpy as jnp
import numpy as np

from eva_jax.models import architectures
from eva_jax.models import params as params_lib
from eva_jax.parallel import mesh as mesh_lib
from eva_jax.parallel import partition
from eva_jax.sampling import decode
from eva_jax.solver import losses
from eva_jax.solver import optim
from eva_jax.solver import rloo
from eva_jax.solver import steps
from eva_jax.solver import train_state

COLLECTIVES = ("all-gather", "reduce-scatter", "all-reduce", "all-to-all", "collective-permute")
_BYTES = {"pred": 1, "s8": 1, "u8": 1, "s16": 2, "u16": 2, "bf16": 2, "f16": 2, "s32": 4, "u32": 4, "f32": 4}
_SHAPE = re.compile(r"\b(pred|[suf]\d+|bf16)\[([\d,]*)\]")
_OP = re.compile(r"=\s*(\([^=]*?\)|\S+)\s+(" + "|".join(COLLECTIVES) + r")(-start)?\(")


@dataclasses.dataclass(frozen=True)
class Sizes:
  """The shapes a run's programs are compiled for."""

  pairs: int  # solver.batch_size: DPO pairs, or RLOO rows (prompts x k), per optimizer step
  micro_batches: int  # gradient-accumulation micro-batches per step
  prompt_len: int  # solver.max_prompt_len
  response_len: int  # solver.max_response_len
  rloo_k: int  # RLOO samples per prompt
  sample_prompts: int  # loop.sample_batch_size
  num_samples: int  # loop.num_samples
  cache_len: int  # loop.max_cache_length
  new_tokens: int  # loop.max_new_tokens
  chunk: int  # model.logprob_chunk


@dataclasses.dataclass(frozen=True)
class Loop:
  """A while loop of a program's entry computation (a lax.while_loop, scan or map)."""

  trip_count: int | None  # XLA's known trip count; None for a data-dependent loop (decode)
  collectives: dict  # kind -> {"count", "bytes"} of ONE iteration, nested loops times their trips
  weight_gathers: int = 0  # distinct gathered-param shapes all-gathered inside (FSDP per iteration)


@dataclasses.dataclass
class Program:
  name: str
  compile_s: float
  argument_bytes: int
  output_bytes: int
  temp_bytes: int
  alias_bytes: int
  code_bytes: int
  flops: float
  bytes_accessed: float
  collectives: dict  # kind -> {"count": n, "bytes": result bytes}
  full_vocab_arrays: int
  full_param_arrays: int  # HLO arrays the full (unsharded) shape of a parameter the rules shard
  largest_buffer: tuple[int, str]  # (bytes, HLO shape) of the largest array in the optimized HLO
  loops: tuple[Loop, ...] = ()  # the entry computation's while loops, collectives per iteration
  collectives_run: dict = dataclasses.field(default_factory=dict)  # per call: loops x known trips
  fsdp_gather_bytes: int = 0  # one device's bytes to all-gather every fsdp-split param once

  @property
  def peak_bytes(self) -> int:
    """Live bytes per device while the program runs: its inputs, its temporaries and its outputs
    less what is written in place of donated inputs."""
    return self.argument_bytes + self.temp_bytes + self.output_bytes - self.alias_bytes


def _shape_bytes(dtype: str, dims: str) -> int:
  return int(np.prod([int(d) for d in dims.split(",") if d] or [1])) * _BYTES.get(dtype, 4)


def hlo_collectives(hlo: str) -> dict:
  """{kind: {"count", "bytes"}} of the collectives in optimized HLO text (async pairs counted once)."""
  out = {kind: {"count": 0, "bytes": 0} for kind in COLLECTIVES}
  for line in hlo.splitlines():
    match = _OP.search(line)
    if not match or "-done(" in line:
      continue
    kind = match.group(2)
    out[kind]["count"] += 1
    out[kind]["bytes"] += sum(_shape_bytes(d, s) for d, s in _SHAPE.findall(match.group(1)))
  return out


_HEADER = re.compile(r"^(ENTRY )?%([\w.\-]+) \(")
_CALLS = re.compile(r"(?:calls|to_apply|condition|true_computation|false_computation)=%([\w.\-]+)")
_WHILE = re.compile(r"\swhile\(.*\bbody=%([\w.\-]+)")
_TRIPS = re.compile(r'"known_trip_count":\{"n":"(\d+)"\}')


def _computations(hlo: str) -> tuple[dict[str, list[str]], str]:
  comps, name, entry = {}, None, ""
  for line in hlo.splitlines():
    head = _HEADER.match(line)
    if head:
      name = head.group(2)
      comps[name] = []
      entry = name if head.group(1) else entry
    elif line.startswith("}"):
      name = None
    elif name:
      comps[name].append(line)
  return comps, entry


def _reachable(comps: dict, name: str, seen: frozenset = frozenset()):
  """(line, times) of every instruction one call of computation `name` runs, through what it
  calls; a nested loop's lines count its known trip count times (1 when unknown)."""
  for line in comps.get(name, ()):
    yield line, 1
    loop = _WHILE.search(line)
    if loop and loop.group(1) not in seen:
      trips = _TRIPS.search(line)
      for inner, times in _reachable(comps, loop.group(1), seen | {name}):
        yield inner, times * (int(trips.group(1)) if trips else 1)
    for called in _CALLS.findall(line):
      if called not in seen:
        yield from _reachable(comps, called, seen | {name})


def _collectives_of(lines) -> dict:
  total = {kind: {"count": 0, "bytes": 0} for kind in COLLECTIVES}
  for line, times in lines:
    for kind, figures in hlo_collectives(line).items():
      total[kind]["count"] += times * figures["count"]
      total[kind]["bytes"] += times * figures["bytes"]
  return total


def collectives_per_call(hlo: str) -> dict:
  """Collectives one call of the program runs: loop bodies times their known trip counts."""
  comps, entry = _computations(hlo)
  return _collectives_of(_reachable(comps, entry))


def _gathered_dims(lines) -> set[tuple[int, ...]]:
  out = set()
  for line, _ in lines:
    match = _OP.search(line)
    if match and match.group(2) == "all-gather" and "-done(" not in line:
      shapes = _SHAPE.findall(match.group(1))
      out |= {tuple(int(d) for d in dims.split(",") if d) for _, dims in shapes[-1:]}
  return out


def hlo_loops(hlo: str, weight_dims: frozenset = frozenset()) -> tuple[Loop, ...]:
  """The entry computation's while loops with the collectives of one iteration each.

  XLA's cost analysis and a plain count of the HLO text see a loop body once; these figures say
  what each iteration moves (for the decode loop: per decoded token of every row).
  `weight_dims`: the shapes fsdp-split params have once gathered; a loop all-gathering one of them
  gathers weights every iteration."""
  comps, entry = _computations(hlo)
  loops = []
  for line in comps.get(entry, ()):
    loop = _WHILE.search(line)
    if loop:
      trips = _TRIPS.search(line)
      body = list(_reachable(comps, loop.group(1), frozenset({entry})))
      gathers = len(_gathered_dims(body) & weight_dims)
      loops.append(Loop(int(trips.group(1)) if trips else None, _collectives_of(body), gathers))
  return tuple(loops)


def full_vocab_arrays(hlo: str, vocab: int, whole: int, width: int | None = None) -> int:
  """HLO arrays holding logits for whole sequences: a vocabulary dimension (or its shard over up to
  16 devices) times at least `whole` other elements, where `whole` is a device's rows times the
  scored columns of a full sequence. Chunked log-probs hold `rows x logprob_chunk` of them (in any
  layout, flattened or not; rows not always split over the batch axes), the decode loop one column:
  both stay below it as long as `logprob_chunk` x the batch split < the response length (true of
  the paper configs on 8 devices: 256 x 2 < 1024); beyond that a chunk can look whole. The
  embedding table ([V, width] or its shards, in any order) is not logits and is not counted."""
  vocab_like = {vocab} | {vocab // k for k in (2, 4, 8, 16) if vocab % k == 0}
  count = 0
  for _, dims in set(_SHAPE.findall(hlo)):
    sizes = [int(d) for d in dims.split(",") if d]
    matches = [i for i, size in enumerate(sizes) if size in vocab_like]
    if matches:  # the largest vocab-like dimension is the vocabulary (rows x chunk may equal V / 8)
      i = max(matches, key=lambda j: sizes[j])
      rest = sizes[:i] + sizes[i + 1 :]
      if width and len(rest) == 1 and width % rest[0] == 0:
        continue  # the embedding table or a shard of its width
      count += int(np.prod(rest or [1]) >= whole)
  return count


def full_param_arrays(hlo: str, params) -> int:
  """HLO arrays with the whole shape of a parameter the rules split over a non-fsdp axis (tensor):
  an unexpected replication. Gathering fsdp-only shards per layer is what FSDP does, so those
  whole shapes are expected and not counted."""
  split = set()
  for p in jax.tree.leaves(params):
    axes = {
      a for entry in p.sharding.spec if entry for a in (entry if isinstance(entry, tuple) else (entry,))
    }
    if axes - {"fsdp"} and p.sharding.shard_shape(p.shape) != tuple(p.shape):
      split.add(tuple(p.shape))
  shapes = {tuple(int(d) for d in dims.split(",") if d) for _, dims in set(_SHAPE.findall(hlo))}
  return len(split & shapes)


def gathered_param_dims(params) -> frozenset:
  """The shapes of fsdp-split params once gathered over fsdp (still split over the other axes)."""
  out = set()
  for p in jax.tree.leaves(params):
    spec = tuple(p.sharding.spec) + (None,) * (len(p.shape) - len(p.sharding.spec))
    dims = list(p.sharding.shard_shape(p.shape))
    for i, entry in enumerate(spec):
      axes = entry if isinstance(entry, tuple) else (entry,)
      if "fsdp" in axes:
        dims[i] *= p.sharding.mesh.shape["fsdp"]
        out.add(tuple(dims))
  return frozenset(out)


def fsdp_gather_bytes(params) -> int:
  """Bytes one device receives to gather every param the rules split over "fsdp" (FSDP's
  per-pass weight traffic: each layer's shards from the other fsdp devices, once)."""
  total = 0
  for p in jax.tree.leaves(params):
    spec = [
      a for entry in p.sharding.spec if entry for a in (entry if isinstance(entry, tuple) else (entry,))
    ]
    if "fsdp" in spec:
      fsdp = p.sharding.mesh.shape["fsdp"]
      shard = int(np.prod(p.sharding.shard_shape(p.shape))) * p.dtype.itemsize
      total += shard * (fsdp - 1)
  return total


def largest_buffer(hlo: str) -> tuple[int, str]:
  best = (0, "")
  for dtype, dims in set(_SHAPE.findall(hlo)):
    best = max(best, (_shape_bytes(dtype, dims), f"{dtype}[{dims}]"))
  return best


def _per_device(rows: int, mesh) -> int:
  """Rows one device holds of a batch split over the batch axes."""
  split = int(np.prod([mesh.shape[a] for a in mesh_lib.BATCH_AXES]))
  return max(1, rows // split)


def _abstract(tree, shardings):
  return jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), tree, shardings)


def compile_program(
  name: str, jitted, args, *, vocab: int, whole: int, params=None, width: int | None = None
) -> Program:
  start = time.perf_counter()
  compiled = jitted.lower(*args).compile()
  seconds = time.perf_counter() - start
  memory = compiled.memory_analysis()
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, list | tuple) else cost or {}
  hlo = compiled.as_text()
  return Program(
    name=name,
    compile_s=seconds,
    argument_bytes=int(memory.argument_size_in_bytes),
    output_bytes=int(memory.output_size_in_bytes),
    temp_bytes=int(memory.temp_size_in_bytes),
    alias_bytes=int(memory.alias_size_in_bytes),
    code_bytes=int(memory.generated_code_size_in_bytes),
    flops=float(cost.get("flops", 0.0)),
    bytes_accessed=float(cost.get("bytes accessed", 0.0)),
    collectives=hlo_collectives(hlo),
    full_vocab_arrays=full_vocab_arrays(hlo, vocab, whole, width),
    full_param_arrays=full_param_arrays(hlo, params) if params is not None else 0,
    largest_buffer=largest_buffer(hlo),
    loops=hlo_loops(hlo, gathered_param_dims(params) if params is not None else frozenset()),
    collectives_run=collectives_per_call(hlo),
    fsdp_gather_bytes=fsdp_gather_bytes(params) if params is not None else 0,
  )


def _pair_batch(sizes: Sizes, mesh) -> steps.PairBatch:
  length = sizes.prompt_len + sizes.response_len
  rows = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(mesh_lib.BATCH_AXES))
  s = lambda shape, dtype: jax.ShapeDtypeStruct(shape, dtype, sharding=rows)
  b = sizes.pairs
  return steps.PairBatch(
    s((b, 2, length), jnp.int32),
    s((b, 2, length), jnp.bool_),
    s((b, 2, length), jnp.bool_),
    s((b, 2), jnp.float32),
    s((b,), jnp.bool_),
    score_start=sizes.prompt_len,
  )


def _sequence_batch(sizes: Sizes, mesh) -> steps.SequenceBatch:
  length = sizes.prompt_len + sizes.response_len
  rows = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(mesh_lib.BATCH_AXES))
  s = lambda shape, dtype: jax.ShapeDtypeStruct(shape, dtype, sharding=rows)
  b = sizes.pairs  # RLOO's batch_size counts sequences (prompts x k)
  return steps.SequenceBatch(
    s((b, length), jnp.int32),
    s((b, length), jnp.bool_),
    s((b, length), jnp.bool_),
    s((b,), jnp.bool_),
    s((b,), jnp.float32),
    s((b, length), jnp.float32),
    score_start=sizes.prompt_len,
  )


def _train_program(name, model, params, param_sh, optimizer, opt_cfg, mesh, sizes: Sizes, dims) -> Program:
  with_ref = name == "rloo_step"
  state_sh = train_state.state_shardings(optimizer, param_sh, mesh, with_ref=with_ref)

  def create(p):
    ref = p if with_ref else None
    return train_state.create_train_state(p, optimizer, state_sh, total_steps=1000, ref_params=ref)

  state = _abstract(jax.eval_shape(create, params), state_sh)
  settings = steps.StepSettings(model, opt_cfg, state_sh, mesh, sizes.micro_batches, sizes.chunk)
  if with_ref:
    step = steps.make_rloo_step(settings, rloo.RlooHParams(k=sizes.rloo_k))
    batch = _sequence_batch(sizes, mesh)
  else:  # the quickstart's and the paper configs' offline loss: DPO + chosen NLL
    step = steps.make_preference_step(settings, "dpo", losses.PreferenceHParams(), nll_weight=1.0)
    batch = _pair_batch(sizes, mesh)
  rng = jax.ShapeDtypeStruct((), jax.random.key(0).dtype, sharding=partition.replicated(mesh))
  rows = sizes.pairs * (1 if with_ref else 2) // sizes.micro_batches
  whole = _per_device(rows, mesh) * sizes.response_len
  return compile_program(name, step.jitted, (state, batch, rng), whole=whole, **dims)


def _generate_program(model, params, mesh, sizes: Sizes, dims) -> Program:
  settings = decode.DecodeSettings(
    num_samples=sizes.num_samples,
    max_new_tokens=sizes.new_tokens,
    temperature=0.7,
    top_k=0,
    top_p=0.9,
    stop_tokens=(1,),
  )
  prompt_cols = sizes.cache_len - sizes.new_tokens
  place = partition.batch_sharding(mesh)
  prompts = jax.ShapeDtypeStruct((sizes.sample_prompts, prompt_cols), jnp.int32, sharding=place)
  mask = jax.ShapeDtypeStruct((sizes.sample_prompts, prompt_cols), jnp.bool_, sharding=place)
  rng = jax.ShapeDtypeStruct((), jax.random.key(0).dtype, sharding=partition.replicated(mesh))
  jitted = decode.jitted_generate(model, settings, mesh)
  whole = _per_device(sizes.sample_prompts * sizes.num_samples, mesh) * sizes.new_tokens
  return compile_program("generate", jitted, (params, prompts, mask, rng), whole=whole, **dims)


PROGRAMS = ("dpo_step", "rloo_step", "ref_logprobs", "generate")


def compile_run(
  model_name: str | gm.nn.Transformer,
  param_dtype: str,
  mesh: jax.sharding.Mesh,
  rules,
  sizes: Sizes,
  opt_cfg: optim.OptimizerConfig,
  programs=PROGRAMS,
) -> list[Program]:
  """Compiles the named programs of a run of `model_name` (or a model) on `mesh` at `sizes`."""
  model = (
    model_name if architectures.is_model(model_name) else architectures.build_model(model_name, param_dtype)
  )
  param_sh = params_lib.shardings_for(model, mesh, rules)
  params = _abstract(params_lib.abstract_params(model), param_sh)
  dims = dict(vocab=model.config.num_embed, params=params, width=model.config.embed_dim)
  optimizer = optim.make_optimizer(opt_cfg)
  out = []
  for name in programs:
    if name in ("dpo_step", "rloo_step"):
      out.append(_train_program(name, model, params, param_sh, optimizer, opt_cfg, mesh, sizes, dims))
    elif name == "ref_logprobs":
      jitted = jax.jit(lambda p, mb: steps.pair_sequence_logprobs(model, p, mb, sizes.chunk, mesh)[0])
      whole = _per_device(2 * sizes.pairs, mesh) * sizes.response_len
      out.append(compile_program(name, jitted, (params, _pair_batch(sizes, mesh)), whole=whole, **dims))
    elif name == "generate":
      out.append(_generate_program(model, params, mesh, sizes, dims))
    else:
      raise ValueError(f"unknown program {name!r}; known: {PROGRAMS}")
  return out
