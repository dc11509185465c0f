"""The Hugging Face layout of a Gemma 4 text model (`Gemma4ForCausalLM`): tensor names and `config.json`.

The counterpart of `hf_format` for the gemma library's `gm.nn.gemma4` param tree. What differs from
Gemma 2 / 3: RMSNorm multiplies by its scale as stored (no 1 + scale, in both libraries); global
layers have their own key width, KV heads and, with `attention_k_eq_v`, keys that are also the
values (one `k_proj`); the E models' per-layer input embeddings ([V, layers x P] in transformers,
[V, layers, P] here) and layers that reuse an earlier layer's KV cache, which transformers stores
without key / value projections or key norm (the gemma library keeps unused ones: imported as zeros,
never exported); the 26B A4B's routed experts beside a dense branch, whose norms the two libraries
name crosswise (`mlp` is transformers' dense branch and the gemma library's experts).

Known difference, not a mapping bug: transformers' router reads the residual stream, the gemma
library's the experts' pre-norm output (`pre_feedforward_layernorm_2` applied), so the two pick the
same experts only where that norm's scale is uniform (`tests/models/test_hf_gemma4.py` shows both).
"""

from collections.abc import Mapping

from gemma.gm.nn.gemma4 import _config as gemma4_config
from gemma.gm.nn.gemma4 import _modules as gemma4_modules
import numpy as np

from eva_jax.models import architectures
from eva_jax.models import hf_format

FAMILY = hf_format.FAMILIES["gemma4"]
MAX_POSITIONS = 131_072
# Tensors of a multimodal Gemma 4 checkpoint that the text model does not use.
MULTIMODAL_PREFIXES = (
  "model.vision_tower.",
  "model.audio_tower.",
  "model.embed_vision.",
  "model.embed_audio.",
)


def _zeros(shape) -> hf_format.Rule:
  """A gemma param transformers does not store (a KV-sharing layer's unused projections)."""
  return hf_format.Rule((), (), lambda xs: np.zeros(shape, np.float32), lambda w: [])


def _linear_t(name: str, shape) -> hf_format.Rule:
  """nn.Linear (out, in) <-> a gemma (in, out) weight."""
  return hf_format.Rule((name,), (tuple(reversed(shape)),), lambda xs: xs[0].T, lambda w: [w.T])


def _reshaped(name: str, hf_shape, shape, transposed: bool) -> hf_format.Rule:
  """A transformers tensor that is the gemma param reshaped, after (or before) a transpose."""
  if transposed:
    return hf_format.Rule(
      (name,), (hf_shape,), lambda xs: xs[0].T.reshape(shape), lambda w: [w.reshape(hf_shape[::-1]).T]
    )
  return hf_format.Rule(
    (name,), (hf_shape,), lambda xs: xs[0].reshape(shape), lambda w: [w.reshape(hf_shape)]
  )


def tensor_rules(config: gemma4_config.TransformerConfig, *, prefix: str = "model.", hf_vocab=None):
  """{gemma param path: Rule} for every param of a Gemma 4 text model (see `hf_format.tensor_rules`)."""
  d, layers = config.embed_dim, config.num_layers
  rules = {
    "embedder/input_embedding": hf_format._embedding(  # noqa: SLF001  (one embedding rule for all)
      f"{prefix}embed_tokens.weight", hf_vocab or config.num_embed, config.num_embed, d
    ),
    "final_norm/scale": hf_format._copy(f"{prefix}norm.weight", (d,)),  # noqa: SLF001
  }
  p = config.per_layer_input_dim
  if p:
    rules |= {
      "embedder/per_layer_embeddings": _reshaped(
        f"{prefix}embed_tokens_per_layer.weight",
        (config.num_embed, layers * p),
        (config.num_embed, layers, p),
        False,
      ),
      "embedder/per_layer_model_projection/w": _reshaped(
        f"{prefix}per_layer_model_projection.weight", (layers * p, d), (d, layers, p), True
      ),
      "embedder/per_layer_projection_norm/scale": hf_format._copy(  # noqa: SLF001
        f"{prefix}per_layer_projection_norm.weight", (p,)
      ),
    }
  for i, widths in enumerate(architectures.layer_widths(config)):
    rules |= _layer_rules(config, widths, f"{prefix}layers.{i}.", f"layer_{i}/")
  return rules


def _layer_rules(config, widths, hf: str, g: str) -> dict:
  d, heads, hd, kv = config.embed_dim, config.num_heads, widths.head_dim, widths.kv_heads
  copy = hf_format._copy  # noqa: SLF001
  attn = f"{hf}self_attn."
  rules = {
    g + "attn/q_einsum/w": hf_format._heads_in((f"{attn}q_proj.weight",), heads, hd, d),  # noqa: SLF001
    g + "attn/attn_vec_einsum/w": hf_format._heads_out(f"{attn}o_proj.weight", heads, hd, d),  # noqa: SLF001
    g + "attn/query_norm/scale": copy(f"{attn}q_norm.weight", (hd,)),
  }
  kv_key = g + ("attn/k_einsum/w" if widths.kv_projections == 1 else "attn/kv_einsum/w")
  if not widths.owns_cache:  # transformers keeps no key/value weights on a layer that reuses a cache
    rules[kv_key] = _zeros((kv, d, hd) if widths.kv_projections == 1 else (2, kv, d, hd))
    rules[g + "attn/key_norm/scale"] = _zeros((hd,))
  else:
    names = (f"{attn}k_proj.weight",) + ((f"{attn}v_proj.weight",) if widths.kv_projections == 2 else ())
    rules[kv_key] = hf_format._heads_in(names, kv, hd, d)  # noqa: SLF001
    rules[g + "attn/key_norm/scale"] = copy(f"{attn}k_norm.weight", (hd,))
  dense = "mlp2" if config.enable_moe else "mlp"
  rules[f"{g}{dense}/gating_einsum"] = hf_format._gating(  # noqa: SLF001
    f"{hf}mlp.gate_proj.weight", f"{hf}mlp.up_proj.weight", widths.mlp, d, True
  )
  rules[f"{g}{dense}/linear"] = _linear_t(f"{hf}mlp.down_proj.weight", (widths.mlp, d))
  norms = {
    "pre_attention_norm": "input_layernorm",
    "post_attention_norm": "post_attention_layernorm",
    "post_ffw_norm": "post_feedforward_layernorm",
  }
  if config.enable_moe:
    # The gemma library's `mlp` is the experts (pre_ffw_norm -> mlp -> post_ffw1_norm) and `mlp2`
    # the dense branch; transformers' `mlp` is the dense branch and its `_2` norms the experts'.
    norms |= {
      "pre_ffw2_norm": "pre_feedforward_layernorm",
      "post_ffw2_norm": "post_feedforward_layernorm_1",
      "pre_ffw_norm": "pre_feedforward_layernorm_2",
      "post_ffw1_norm": "post_feedforward_layernorm_2",
    }
    e, f = config.num_experts, config.expert_dim
    rules |= {
      g + "mlp/gating_einsum/w": _reshaped(f"{hf}experts.gate_up_proj", (e, 2 * f, d), (e, 2, f, d), False),
      g + "mlp/linear/w": hf_format.Rule(
        (f"{hf}experts.down_proj",),
        ((e, d, f),),
        lambda xs: xs[0].transpose(0, 2, 1),
        lambda w: [w.transpose(0, 2, 1)],
      ),
      g + "mlp/router_logits/w": _linear_t(f"{hf}router.proj.weight", (d, e)),
      g + "mlp/router_scale": copy(f"{hf}router.scale", (d,)),
      g + "mlp/per_expert_scale": copy(f"{hf}router.per_expert_scale", (e,)),
    }
  else:
    norms["pre_ffw_norm"] = "pre_feedforward_layernorm"
  for ours, theirs in norms.items():
    rules[f"{g}{ours}/scale"] = copy(f"{hf}{theirs}.weight", (d,))
  if widths.per_layer_input:
    p = widths.per_layer_input
    rules |= {
      g + "per_layer_input_gate/w": _linear_t(f"{hf}per_layer_input_gate.weight", (d, p)),
      g + "per_layer_projection/w": _linear_t(f"{hf}per_layer_projection.weight", (p, d)),
      g + "post_per_layer_input_norm/scale": copy(f"{hf}post_per_layer_input_norm.weight", (d,)),
    }
  rules[g + "skip_scale"] = copy(f"{hf}layer_scalar", (1,))
  return rules


def _rope(proportion: float | None, theta: float) -> dict:
  if proportion in (None, 1.0):
    return {"rope_type": "default", "rope_theta": float(theta)}
  return {"rope_type": "proportional", "partial_rotary_factor": float(proportion), "rope_theta": float(theta)}


def expected_fields(config: gemma4_config.TransformerConfig) -> dict:
  """The `config.json` values (Gemma4TextConfig's keys) the gemma architecture implies."""
  if config.local_scale_factor != 1.0 or config.global_scale_factor != 1.0:
    raise ValueError("Gemma 4 with a rope scale factor has no Hugging Face config here")
  if config.num_global_kv_heads and not config.k_eq_v_global:
    # transformers applies num_global_key_value_heads only with attention_k_eq_v
    raise ValueError("Gemma 4 with its own global KV heads but separate values has no Hugging Face config")
  widths = architectures.layer_widths(config)
  shared = sum(not w.owns_cache for w in widths)
  wide = config.override_kv_shared_ffw_hidden
  if wide and wide != 2 * config.hidden_dim:
    raise ValueError(f"KV-sharing layers' MLP {wide} is not twice {config.hidden_dim} (use_double_wide_mlp)")
  types = [
    hf_format.FULL if t == gemma4_modules.AttentionType.GLOBAL else hf_format.SLIDING
    for t in config.attention_types
  ]
  fields = hf_format.core_fields(config) | {
    "global_head_dim": config.global_key_size or config.head_dim,
    "attention_k_eq_v": bool(config.k_eq_v_global),
    "final_logit_softcapping": config.final_logit_softcap,
    "sliding_window": config.sliding_window_size,
    "layer_types": types,
    "hidden_size_per_layer_input": config.per_layer_input_dim,
    "num_kv_shared_layers": shared,
    "use_double_wide_mlp": bool(wide),
    "enable_moe_block": bool(config.enable_moe),
    "rope_parameters": {
      hf_format.SLIDING: _rope(config.local_rope_proportion, config.local_base_frequency),
      hf_format.FULL: _rope(config.global_rope_proportion, config.global_base_frequency),
    },
  }
  if config.num_global_kv_heads:
    fields["num_global_key_value_heads"] = config.num_global_kv_heads
  if config.per_layer_input_dim:
    fields["vocab_size_per_layer_input"] = config.num_embed
  if config.enable_moe:
    fields |= {
      "num_experts": config.num_experts,
      "top_k_experts": config.top_k_experts,
      "moe_intermediate_size": config.expert_dim,
    }
  return fields


def _sharing_owners(text: Mapping, layer_types: list[str]) -> list[int]:
  """Each layer's KV-cache owner as transformers derives it (the last unshared layer of its kind)."""
  n = len(layer_types)
  first = n - int(text.get("num_kv_shared_layers") or 0)
  owners = list(range(n))
  for i in range(first, n):
    owners[i] = max(j for j in range(first) if layer_types[j] == layer_types[i])
  return owners


def _global_widths(text: Mapping) -> dict:
  """global_head_dim / num_global_key_value_heads, also where transformers 5 saved them per layer."""
  per_layer = text.get("per_layer_config")
  if not per_layer:
    return {}
  kinds = text.get("layer_types") or []
  full = [i for i, kind in enumerate(kinds) if kind == hf_format.FULL]
  first = per_layer.get(str(full[0]), per_layer.get(full[0], {})) if full else {}
  out = {"global_head_dim": first.get("head_dim", text.get("head_dim"))}
  if "num_key_value_heads" in first:
    out["num_global_key_value_heads"] = first["num_key_value_heads"]
  return out


def check_config(hf_config: Mapping, config, *, name: str, where) -> int:
  """Raises ValueError naming the first `config.json` field that contradicts architecture `name`."""
  text = (
    dict(hf_config.get("text_config", {})) if hf_config.get("model_type") == "gemma4" else dict(hf_config)
  )
  model_type = hf_config.get("model_type")
  if model_type not in FAMILY["model_types"]:
    raise ValueError(
      f"{where}: model_type is {model_type!r}, model {name} is a gemma4 model (gemma4_text, gemma4)"
    )
  defaults = {"attention_k_eq_v": False, "num_kv_shared_layers": 0, "use_double_wide_mlp": False}
  defaults |= {"enable_moe_block": False, "hidden_size_per_layer_input": 256, "global_head_dim": 512}
  text |= _global_widths(text)
  for field, want in expected_fields(config).items():
    got = text.get(field, defaults.get(field))
    if field == "rope_parameters":
      got = {kind: {k: v for k, v in (got or {}).get(kind, {}).items()} for kind in want}
      want = {kind: dict(v) for kind, v in want.items()}
    if field == "layer_types" and got:
      got = list(got[:-1]) + [hf_format.FULL]  # transformers forces the last layer global
    if not hf_format._same(got, want):  # noqa: SLF001
      raise ValueError(f"{where}: {field} is {got}, model {name} has {want} (wrong model.name?)")
  widths = architectures.layer_widths(config)
  ours = gemma4_config.create_kv_cache_sharing_patterns(
    config.kv_cache_sharing_config, config.num_layers, config.attention_types
  )
  theirs = _sharing_owners(text, text["layer_types"])
  if ours != theirs:
    raise ValueError(f"{where}: layers reuse the KV caches of {theirs}, model {name} of {ours}")
  assert len(widths) == len(ours)
  activation = text.get("hidden_activation", "gelu_pytorch_tanh")
  if activation != "gelu_pytorch_tanh":
    raise ValueError(f"{where}: hidden_activation is {activation!r}; Gemma uses 'gelu_pytorch_tanh'")
  if not hf_format._same(text.get("rms_norm_eps", 1e-6), 1e-6):  # noqa: SLF001
    raise ValueError(
      f"{where}: rms_norm_eps is {text['rms_norm_eps']}; the gemma library's RMSNorm uses 1e-06"
    )
  if text.get("tie_word_embeddings", hf_config.get("tie_word_embeddings", True)) is False:
    raise ValueError(f"{where}: tie_word_embeddings is false; Gemma ties its output head to the embedding")
  vocab = text.get("vocab_size")
  if vocab != config.num_embed:
    raise ValueError(
      f"{where}: vocab_size is {vocab!r}, model {name} embeds {config.num_embed} (wrong model.name?)"
    )
  return vocab


def make_config(config, *, dtype: str, special_ids: Mapping) -> dict:
  """The `config.json` of an exported Gemma 4 text model (Gemma4ForCausalLM)."""
  fields = expected_fields(config)
  return hf_format.causal_lm_config(FAMILY, fields, config.num_embed, MAX_POSITIONS, dtype) | dict(
    special_ids
  )
