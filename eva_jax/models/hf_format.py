"""The Hugging Face layout of a Gemma 2 / Gemma 3 text model: tensor names and `config.json`.

Pure functions, no I/O. `tensor_rules(config, family, prefix)` says, for every leaf of the gemma
library's param tree, which Hugging Face tensors hold it and how to turn one into the other
(transformers' `nn.Linear` weights are (out, in); the gemma library's einsums keep heads and widths
apart). Both libraries store RMSNorm scales the same way (the norm multiplies by 1 + scale) and tie
the output head to the embedding, so norms and embedding copy over unchanged.

`check_config` compares a `config.json` with the architecture `model.name` chose; `make_config`
writes the one transformers and vLLM read for an export.
"""

from collections.abc import Callable
from collections.abc import Mapping
import dataclasses
import math

from gemma import gm
import numpy as np

# The text models of each family, as transformers names them.
FAMILIES = {
  "gemma2": {"model_types": ("gemma2",), "architecture": "Gemma2ForCausalLM", "model_type": "gemma2"},
  "gemma3": {
    "model_types": ("gemma3_text", "gemma3"),  # gemma3 = Gemma3ForConditionalGeneration (4B and up)
    "architecture": "Gemma3ForCausalLM",
    "model_type": "gemma3_text",
  },
  "gemma4": {  # its tensor layout: hf_gemma4
    "model_types": ("gemma4_text", "gemma4"),  # gemma4 = Gemma4ForConditionalGeneration (vision, audio)
    "architecture": "Gemma4ForCausalLM",
    "model_type": "gemma4_text",
  },
}
MAX_POSITIONS = {"gemma2": 8192, "gemma3": 131_072}


def family_info(family: str) -> dict:
  """`FAMILIES[family]`, or a ValueError naming the known families."""
  if family not in FAMILIES:
    raise ValueError(f"unknown checkpoint family {family!r}; known: {sorted(FAMILIES)}")
  return FAMILIES[family]


# Tensors of a multimodal checkpoint that a text-only model does not use.
VISION_PREFIXES = (
  "vision_tower.",
  "multi_modal_projector.",
  "model.vision_tower.",
  "model.multi_modal_projector.",
)
SLIDING, FULL = "sliding_attention", "full_attention"


@dataclasses.dataclass(frozen=True)
class Rule:
  """One gemma param and the Hugging Face tensors that hold it."""

  hf_names: tuple[str, ...]
  hf_shapes: tuple[tuple[int, ...], ...]
  to_gemma: Callable[[list[np.ndarray]], np.ndarray]
  to_hf: Callable[[np.ndarray], list[np.ndarray]]


def _copy(name: str, shape) -> Rule:
  return Rule((name,), (tuple(shape),), lambda xs: xs[0], lambda w: [w])


def _heads_in(names, heads: int, head_dim: int, width: int) -> Rule:
  """q/k/v projections (heads * head_dim, width) <-> einsum (heads, width, head_dim), stacked if several."""

  def to_gemma(xs):
    ws = [x.reshape(heads, head_dim, width).transpose(0, 2, 1) for x in xs]
    return ws[0] if len(ws) == 1 else np.stack(ws)

  def to_hf(w):
    ws = [w] if len(names) == 1 else list(w)
    return [x.transpose(0, 2, 1).reshape(heads * head_dim, width) for x in ws]

  return Rule(tuple(names), ((heads * head_dim, width),) * len(names), to_gemma, to_hf)


def _heads_out(name: str, heads: int, head_dim: int, width: int) -> Rule:
  """o_proj (width, heads * head_dim) <-> attn_vec_einsum (heads, head_dim, width)."""
  return Rule(
    (name,),
    ((width, heads * head_dim),),
    lambda xs: xs[0].T.reshape(heads, head_dim, width),
    lambda w: [w.reshape(heads * head_dim, width).T],
  )


def _gating(gate: str, up: str, hidden: int, width: int, transposed: bool) -> Rule:
  """gate_proj and up_proj (hidden, width) <-> gating_einsum: (2, hidden, width), or (2, width, hidden)."""
  if transposed:
    return Rule((gate, up), ((hidden, width),) * 2, np.stack, list)
  return Rule(
    (gate, up), ((hidden, width),) * 2, lambda xs: np.stack([x.T for x in xs]), lambda w: [x.T for x in w]
  )


def _embedding(name: str, hf_rows: int, num_embed: int, width: int) -> Rule:
  """The embedding; rows beyond the smaller of the two vocabularies are zero-padded or dropped.

  Gemma 2's checkpoints carry 256,128 rows where transformers' config says 256,000; Gemma 3's
  multimodal ones 262,208 (image tokens) where the text model embeds 262,144.
  """

  def to_gemma(xs):
    x = xs[0][:num_embed]
    if x.shape[0] < num_embed:
      x = np.concatenate([x, np.zeros((num_embed - x.shape[0], width), x.dtype)])
    return x

  return Rule((name,), ((hf_rows, width),), to_gemma, lambda w: [w[:hf_rows]])


def tensor_rules(
  config: gm.nn.config.TransformerConfig, *, prefix: str = "model.", hf_vocab: int | None = None
):
  """{gemma param path ("layer_0/attn/q_einsum/w"): Rule}, for every param of a text model.

  `prefix` is where the text model sits in the checkpoint ("model." for *ForCausalLM,
  "model.language_model." for a multimodal Gemma 3); `hf_vocab` the checkpoint's embedding rows.
  """
  width, heads, kv, hd, hidden = (
    config.embed_dim,
    config.num_heads,
    config.num_kv_heads,
    config.head_dim,
    config.hidden_dim,
  )
  rules = {
    "embedder/input_embedding": _embedding(
      f"{prefix}embed_tokens.weight", hf_vocab or config.num_embed, config.num_embed, width
    ),
    "final_norm/scale": _copy(f"{prefix}norm.weight", (width,)),
  }
  for i in range(config.num_layers):
    hf, g = f"{prefix}layers.{i}.", f"layer_{i}/"
    q, k, v = (f"{hf}self_attn.{n}_proj.weight" for n in "qkv")
    if heads == kv:
      rules[g + "attn/qkv_einsum/w"] = _heads_in((q, k, v), heads, hd, width)
    else:
      rules[g + "attn/q_einsum/w"] = _heads_in((q,), heads, hd, width)
      rules[g + "attn/kv_einsum/w"] = _heads_in((k, v), kv, hd, width)
    rules[g + "attn/attn_vec_einsum/w"] = _heads_out(f"{hf}self_attn.o_proj.weight", heads, hd, width)
    if config.use_qk_norm:
      rules[g + "attn/_query_norm/scale"] = _copy(f"{hf}self_attn.q_norm.weight", (hd,))
      rules[g + "attn/_key_norm/scale"] = _copy(f"{hf}self_attn.k_norm.weight", (hd,))
    rules[g + "mlp/gating_einsum"] = _gating(
      f"{hf}mlp.gate_proj.weight", f"{hf}mlp.up_proj.weight", hidden, width, config.transpose_gating_einsum
    )
    rules[g + "mlp/linear"] = Rule(
      (f"{hf}mlp.down_proj.weight",), ((width, hidden),), lambda xs: xs[0].T, lambda w: [w.T]
    )
    norms = {"pre_attention_norm": "input_layernorm", "pre_ffw_norm": "pre_feedforward_layernorm"}
    if config.use_post_attn_norm:
      norms["post_attention_norm"] = "post_attention_layernorm"
    if config.use_post_ffw_norm:
      norms["post_ffw_norm"] = "post_feedforward_layernorm"
    for ours, theirs in norms.items():
      rules[f"{g}{ours}/scale"] = _copy(f"{hf}{theirs}.weight", (width,))
  return rules


def text_config(hf_config: Mapping) -> dict:
  """The text model's part of a `config.json` (a multimodal Gemma 3 nests it under text_config)."""
  if hf_config.get("model_type") == "gemma3":
    return {"model_type": "gemma3", **hf_config.get("text_config", {})}
  return dict(hf_config)


def layer_types(hf_text: Mapping) -> list[str]:
  """Each layer's attention kind, as transformers derives it when `layer_types` is absent."""
  if hf_text.get("layer_types"):
    return list(hf_text["layer_types"])
  pattern = 2 if hf_text.get("model_type") == "gemma2" else hf_text.get("sliding_window_pattern", 6)
  return [SLIDING if (i + 1) % pattern else FULL for i in range(hf_text["num_hidden_layers"])]


def rope(hf_text: Mapping) -> dict[str, tuple[float, float]]:
  """{"sliding_attention" | "full_attention": (base frequency, linear scale factor)} of a config.

  Reads transformers 5's `rope_parameters` and the older `rope_theta` / `rope_local_base_freq` /
  `rope_scaling` keys that configs on the Hub still carry.
  """
  params = hf_text.get("rope_parameters")
  gemma2 = hf_text.get("model_type") == "gemma2"
  if params is None:
    theta = hf_text.get("rope_theta", 10_000.0 if gemma2 else 1_000_000.0)
    scaling = hf_text.get("rope_scaling") or {}
    params = {
      FULL: {"rope_theta": theta, **scaling},
      SLIDING: {"rope_theta": theta if gemma2 else hf_text.get("rope_local_base_freq", 10_000.0)},
    }
  elif "rope_theta" in params:  # one set for every layer (Gemma 2)
    params = {FULL: params, SLIDING: params}
  out = {}
  for kind in (SLIDING, FULL):
    p = params.get(kind, {})
    kind_of_rope = p.get("rope_type", p.get("type", "default"))
    if kind_of_rope not in ("default", "linear"):
      raise ValueError(f"rope_type {kind_of_rope!r} for {kind} layers is not supported (default, linear)")
    out[kind] = (float(p.get("rope_theta", 10_000.0)), float(p.get("factor", 1.0)))
  return out


def core_fields(config) -> dict:
  """The sizes every Gemma family's `config.json` states the same way."""
  return {
    "num_hidden_layers": config.num_layers,
    "hidden_size": config.embed_dim,
    "intermediate_size": config.hidden_dim,
    "num_attention_heads": config.num_heads,
    "num_key_value_heads": config.num_kv_heads,
    "head_dim": config.head_dim,
  }


def expected_fields(config: gm.nn.config.TransformerConfig) -> dict:
  """The `config.json` values the gemma architecture implies (the text config's keys)."""
  local, glob = gm.nn.AttentionType.LOCAL_SLIDING, gm.nn.AttentionType.GLOBAL
  types = [SLIDING if t == local else FULL for t in config.attention_types]
  assert all(t in (local, glob) for t in config.attention_types), config.attention_types
  return core_fields(config) | {
    "query_pre_attn_scalar": _query_scalar(config),
    "final_logit_softcapping": config.final_logit_softcap,
    "attn_logit_softcapping": config.attn_logits_soft_cap,
    "sliding_window": config.sliding_window_size,
    "layer_types": types,
  }


def _query_scalar(config) -> float | int:
  """transformers scales queries by query_pre_attn_scalar ** -0.5; the gemma library by the multiplier."""
  value = config.query_pre_attn_scalar() ** -2
  return round(value) if abs(value - round(value)) < 1e-6 else value


def _same(a, b) -> bool:
  if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
    return math.isclose(a, b, rel_tol=1e-6)
  return a == b


def check_config(
  hf_config: Mapping, config: gm.nn.config.TransformerConfig, family: str, *, name: str, where
) -> int:
  """Raises ValueError naming the first field of `config.json` that contradicts architecture `name`.

  Returns the checkpoint's vocabulary size (its embedding rows).
  """
  text = text_config(hf_config)
  kinds = family_info(family)["model_types"]
  if text.get("model_type") not in kinds:
    raise ValueError(
      f"{where}: model_type is {text.get('model_type')!r}, model {name} is a {family} model ({', '.join(kinds)})"
    )
  expected = expected_fields(config)
  for field, want in expected.items():
    got = layer_types(text) if field == "layer_types" else text.get(field)
    if field == "head_dim" and got is None:
      got = text["hidden_size"] // text["num_attention_heads"]
    if not _same(got, want):
      raise ValueError(f"{where}: {field} is {got}, model {name} has {want} (wrong model.name?)")
  ropes = rope(text)
  for kind, base, scale in (
    (SLIDING, config.local_base_frequency, config.local_scale_factor),
    (FULL, config.global_base_frequency, config.global_scale_factor),
  ):
    if not (_same(ropes[kind][0], base) and _same(ropes[kind][1], scale)):
      raise ValueError(
        f"{where}: rope of {kind} layers is (theta {ropes[kind][0]}, factor {ropes[kind][1]}), "
        f"model {name} has (theta {base}, factor {scale})"
      )
  activation = text.get("hidden_activation") or text.get("hidden_act")
  if activation not in (None, "gelu_pytorch_tanh"):
    raise ValueError(f"{where}: hidden_activation is {activation!r}; Gemma uses 'gelu_pytorch_tanh'")
  if not _same(text.get("rms_norm_eps", 1e-6), 1e-6):
    raise ValueError(
      f"{where}: rms_norm_eps is {text['rms_norm_eps']}; the gemma library's RMSNorm uses 1e-06"
    )
  if text.get("tie_word_embeddings", hf_config.get("tie_word_embeddings", True)) is False:
    raise ValueError(f"{where}: tie_word_embeddings is false; Gemma ties its output head to the embedding")
  vocab = text.get("vocab_size")
  if not isinstance(vocab, int) or vocab <= 0:
    raise ValueError(f"{where}: vocab_size is {vocab!r}")
  if vocab > config.num_embed and text.get("model_type") != "gemma3":
    raise ValueError(
      f"{where}: vocab_size is {vocab}, model {name} embeds {config.num_embed} (wrong model.name?)"
    )
  return vocab


def causal_lm_config(info: Mapping, fields: Mapping, vocab: int, max_positions: int, dtype: str) -> dict:
  """The keys every exported Gemma text model's `config.json` holds, around its family's `fields`."""
  return {
    "architectures": [info["architecture"]],
    "model_type": info["model_type"],
    **fields,
    "vocab_size": vocab,
    "hidden_activation": "gelu_pytorch_tanh",
    "max_position_embeddings": max_positions,
    "rms_norm_eps": 1e-6,
    "attention_bias": False,
    "attention_dropout": 0.0,
    "tie_word_embeddings": True,
    "use_cache": True,
    "dtype": dtype,
    "torch_dtype": dtype,  # the key transformers 4 and vLLM's older releases read
  }


def make_config(
  config: gm.nn.config.TransformerConfig, family: str, *, dtype: str, special_ids: Mapping
) -> dict:
  """The `config.json` of an exported text model (the *ForCausalLM class of its family)."""
  fields = expected_fields(config)
  local = {"rope_type": "default", "rope_theta": float(config.local_base_frequency)}
  glob = {"rope_type": "default", "rope_theta": float(config.global_base_frequency)}
  if config.global_scale_factor != 1.0:
    glob.update(rope_type="linear", factor=float(config.global_scale_factor))
  out = causal_lm_config(family_info(family), fields, config.num_embed, MAX_POSITIONS[family], dtype)
  out |= special_ids
  if family == "gemma2":  # one rope for every layer
    if local != glob:
      raise ValueError(
        f"a Gemma 2 config.json has one rope for every layer; this model has {local} and {glob}"
      )
    out["rope_parameters"] = local
    out["rope_theta"] = local["rope_theta"]
  else:
    out["rope_parameters"] = {SLIDING: local, FULL: glob}
    out["rope_theta"] = glob["rope_theta"]
    out["rope_local_base_freq"] = local["rope_theta"]
    if "factor" in glob:
      out["rope_scaling"] = {"rope_type": "linear", "factor": glob["factor"]}
  return out
