"""Named model architectures: the real Gemma 2 / 3 / 4 text models and tiny CPU ones.

Each name maps to the gemma library's own module (never a copy): `gm.nn.Transformer` for Gemma 2
and 3, the Gemma 4 `Transformer` of `gm.nn.gemma4` (text only: its vision and audio encoders are
left out), with the tokenizer kind it expects and the Hugging Face family its checkpoints belong
to. `tiny` and `small` are Gemma-2-shaped (alternating local/global attention, attention and
final-logit soft-caps, post-norms), `tiny_gemma3` Gemma-3-shaped (q/k norms, 5:1 local/global, two
rope bases, linear rope scaling), `tiny_gemma4` Gemma-4-E-shaped (per-layer input embeddings,
layers that reuse an earlier layer's KV cache, wider key size and partial rope on global layers)
and `tiny_gemma4_moe` Gemma-4-26B-A4B-shaped (a dense branch beside routed experts, keys equal to
values on global layers), so every code path of the real models runs in tests.
"""

from collections.abc import Callable
import dataclasses

from gemma import gm
from gemma.gm.nn.gemma4 import _config as gemma4_config
from gemma.gm.nn.gemma4 import _modules as gemma4_modules
from gemma.gm.nn.gemma4 import _transformer as gemma4_transformer
import jax.numpy as jnp

from eva_jax.models import tokenizer as tokenizer_lib


@dataclasses.dataclass(frozen=True)
class Architecture:
  """How to build one named model."""

  make: Callable[[jnp.dtype], object]  # param dtype -> the gemma library's Transformer module
  tokenizer_kind: str  # one of tokenizer_lib.KINDS
  family: str  # the Hugging Face family its checkpoints belong to (hf_format.FAMILIES)


def _cpu_sized(*, layers, width, heads, kv_heads, mlp, pattern, **family):
  """A config over the embedded 512-token vocab with the given sizes and the family's own fields."""
  return gm.nn.config.TransformerConfig(
    num_embed=tokenizer_lib.EMBEDDED_VOCAB_SIZE,
    embed_dim=width,
    hidden_dim=mlp,
    num_heads=heads,
    head_dim=width // heads,
    num_kv_heads=kv_heads,
    use_post_attn_norm=True,
    use_post_ffw_norm=True,
    attention_types=gm.nn.config.make_attention_layers_types(pattern, num_layers=layers),
    transpose_gating_einsum=True,
    **family,
  )


_LOCAL, _GLOBAL = gm.nn.AttentionType.LOCAL_SLIDING, gm.nn.AttentionType.GLOBAL


def cpu_sized_config(*, layers: int, width: int, heads: int, kv_heads: int, mlp: int):
  """A Gemma-2-style config (soft-caps, local/global attention) over the embedded 512-token vocab."""
  sizes = dict(layers=layers, width=width, heads=heads, kv_heads=kv_heads, mlp=mlp)
  return _cpu_sized(
    **sizes,
    pattern=(_LOCAL, _GLOBAL),
    final_logit_softcap=30.0,
    attn_logits_soft_cap=50.0,
    sliding_window_size=64,
  )


def cpu_sized_gemma3_config(*, layers: int, width: int, heads: int, kv_heads: int, mlp: int):
  """A Gemma-3-style config (q/k norms, no soft-caps, 5 local : 1 global layers, two rope bases and
  the 4B-and-up models' linear rope scaling on global layers) over the embedded 512-token vocab."""
  sizes = dict(layers=layers, width=width, heads=heads, kv_heads=kv_heads, mlp=mlp)
  return _cpu_sized(
    **sizes,
    pattern=(_LOCAL,) * 5 + (_GLOBAL,),
    final_logit_softcap=None,
    use_qk_norm=True,
    sliding_window_size=16,
    local_base_frequency=10_000,
    global_base_frequency=1_000_000,
    global_scale_factor=8.0,
  )


def cpu_sized_gemma4_config(*, layers: int, width: int, heads: int, kv_heads: int, mlp: int, moe: bool):
  """A Gemma-4-style config over the embedded 512-token vocab: 2 local : 1 global layers, global
  layers with twice the key size and a quarter of it rotated. Dense (`moe=False`, like E2B/E4B):
  per-layer input embeddings and the last half of the layers reusing the KV cache of the last
  unshared layer of their type, with a wider MLP. MoE (like 26B-A4B): 8 experts, top 2, beside a
  dense branch, one shared key/value head on global layers."""
  local, glob = gemma4_modules.AttentionType.LOCAL_SLIDING, gemma4_modules.AttentionType.GLOBAL
  head_dim = width // heads
  experts = dict(
    enable_moe=True, num_experts=8, expert_dim=mlp // 4, top_k_experts=2, moe_dense_hidden_dim=mlp
  )
  dense = dict(
    per_layer_input_dim=16,
    kv_cache_sharing_config=gemma4_config.KVCacheSharingConfig(
      frac_shared_layers=0.5, share_global=True, share_local=True
    ),
    override_kv_shared_ffw_hidden=2 * mlp,
  )
  return gemma4_config.TransformerConfig(
    num_embed=tokenizer_lib.EMBEDDED_VOCAB_SIZE,
    embed_dim=width,
    hidden_dim=mlp,
    num_heads=heads,
    head_dim=head_dim,
    num_kv_heads=kv_heads,
    num_global_kv_heads=1 if moe else None,
    final_logit_softcap=30.0,
    use_post_attn_norm=True,
    use_post_ffw_norm=True,
    qk_norm_with_scale=True,
    attention_types=gemma4_config.make_attention_layers_types((local, local, glob), num_layers=layers),
    global_key_size=2 * head_dim,
    k_eq_v_global=moe,
    global_rope_proportion=0.25,
    local_rope_proportion=1.0,
    sliding_window_size=16,
    local_base_frequency=10_000,
    global_base_frequency=1_000_000,
    **(experts if moe else dense),
  )


TINY_CONFIG = cpu_sized_config(layers=3, width=128, heads=4, kv_heads=2, mlp=512)
TINY_GEMMA3_CONFIG = cpu_sized_gemma3_config(layers=6, width=128, heads=4, kv_heads=2, mlp=512)
SMALL_CONFIG = cpu_sized_config(layers=6, width=256, heads=8, kv_heads=4, mlp=1024)
TINY_GEMMA4_CONFIG = cpu_sized_gemma4_config(layers=6, width=128, heads=4, kv_heads=2, mlp=512, moe=False)
TINY_GEMMA4_MOE_CONFIG = cpu_sized_gemma4_config(layers=6, width=128, heads=4, kv_heads=2, mlp=512, moe=True)


def _fixed(cls, **kwargs) -> Callable[[jnp.dtype], gm.nn.Transformer]:
  return lambda dtype: cls(dtype=dtype, **kwargs)


def _custom(config) -> Callable[[jnp.dtype], gm.nn.Transformer]:
  return lambda dtype: gm.nn.Transformer(config=config, dtype=dtype)


def _custom_gemma4(config) -> Callable[[jnp.dtype], object]:
  return lambda dtype: gemma4_transformer.Transformer(config=config, dtype=dtype)


def is_gemma4(model) -> bool:
  """Whether `model` is the gemma library's Gemma 4 module (its own Embedder, Block and cache)."""
  return isinstance(model, gemma4_transformer.Transformer)


@dataclasses.dataclass(frozen=True)
class LayerWidths:
  """What one layer of a model computes per token, for the memory plan."""

  mlp: int  # the dense MLP's hidden width
  head_dim: int  # query / key width of its attention
  kv_heads: int
  kv_projections: int  # 2 (keys and values), 1 where values are the keys (Gemma 4 global layers)
  owns_cache: bool  # False where the layer reads an earlier layer's KV cache (Gemma 4 E models)
  per_layer_input: int  # width of its per-layer input embedding (Gemma 4 E models), else 0


def layer_widths(cfg) -> list[LayerWidths]:
  """Per layer of a Gemma 2 / 3 / 4 config: its MLP, attention and cache widths."""
  if not isinstance(cfg, gemma4_config.TransformerConfig):
    kv = (cfg.head_dim, cfg.num_kv_heads, 2, True, 0)
    return [LayerWidths(cfg.hidden_dim, *kv) for _ in range(cfg.num_layers)]
  owner = gemma4_config.create_kv_cache_sharing_patterns(
    cfg.kv_cache_sharing_config, cfg.num_layers, cfg.attention_types
  )
  widths = []
  for i, kind in enumerate(cfg.attention_types):
    is_global = kind == gemma4_modules.AttentionType.GLOBAL and cfg.global_key_size is not None
    shared = owner[i] != i
    widths.append(
      LayerWidths(
        mlp=cfg.override_kv_shared_ffw_hidden
        if shared and cfg.override_kv_shared_ffw_hidden
        else cfg.hidden_dim,
        head_dim=cfg.global_key_size if is_global else cfg.head_dim,
        kv_heads=(cfg.num_global_kv_heads or cfg.num_kv_heads) if is_global else cfg.num_kv_heads,
        kv_projections=1 if is_global and cfg.k_eq_v_global else 2,
        owns_cache=not shared,
        per_layer_input=cfg.per_layer_input_dim,
      )
    )
  return widths


def is_model(obj) -> bool:
  """Whether `obj` is one of the gemma library's text Transformers this project runs."""
  return isinstance(obj, (gm.nn.Transformer, gemma4_transformer.Transformer))


ARCHITECTURES: dict[str, Architecture] = {
  "tiny": Architecture(_custom(TINY_CONFIG), "embedded", "gemma2"),
  "tiny_gemma3": Architecture(_custom(TINY_GEMMA3_CONFIG), "embedded", "gemma3"),
  "small": Architecture(_custom(SMALL_CONFIG), "embedded", "gemma2"),
  "gemma2_2b": Architecture(_fixed(gm.nn.Gemma2_2B), "gemma2", "gemma2"),
  "gemma2_9b": Architecture(_fixed(gm.nn.Gemma2_9B), "gemma2", "gemma2"),
  "gemma2_27b": Architecture(_fixed(gm.nn.Gemma2_27B), "gemma2", "gemma2"),
  "gemma3_270m": Architecture(_fixed(gm.nn.Gemma3_270M), "gemma3", "gemma3"),
  "gemma3_1b": Architecture(_fixed(gm.nn.Gemma3_1B), "gemma3", "gemma3"),
  "gemma3_4b": Architecture(_fixed(gm.nn.Gemma3_4B, text_only=True), "gemma3", "gemma3"),
  "gemma3_12b": Architecture(_fixed(gm.nn.Gemma3_12B, text_only=True), "gemma3", "gemma3"),
  "gemma3_27b": Architecture(_fixed(gm.nn.Gemma3_27B, text_only=True), "gemma3", "gemma3"),
  "tiny_gemma4": Architecture(_custom_gemma4(TINY_GEMMA4_CONFIG), "embedded", "gemma4"),
  "tiny_gemma4_moe": Architecture(_custom_gemma4(TINY_GEMMA4_MOE_CONFIG), "embedded", "gemma4"),
  "gemma4_e2b": Architecture(_fixed(gm.nn.Gemma4_E2B, text_only=True), "gemma4", "gemma4"),
  "gemma4_e4b": Architecture(_fixed(gm.nn.Gemma4_E4B, text_only=True), "gemma4", "gemma4"),
  "gemma4_31b": Architecture(_fixed(gm.nn.Gemma4_31B, text_only=True), "gemma4", "gemma4"),
  "gemma4_26b_a4b": Architecture(_fixed(gm.nn.Gemma4_26B_A4B, text_only=True), "gemma4", "gemma4"),
}

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def build_model(name: str, param_dtype: str = "float32"):
  """The gemma `Transformer` module for architecture `name` with params in `param_dtype`."""
  if name not in ARCHITECTURES:
    raise ValueError(f"unknown model {name!r}; known: {sorted(ARCHITECTURES)}")
  if param_dtype not in DTYPES:
    raise ValueError(f"unknown param dtype {param_dtype!r}; known: {sorted(DTYPES)}")
  return ARCHITECTURES[name].make(DTYPES[param_dtype])
