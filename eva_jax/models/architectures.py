"""Named model architectures: the real Gemma 2 / Gemma 3 text models and tiny CPU ones.

Each name maps to a `gm.nn.Transformer` (the gemma library's own module, never a copy), the
tokenizer kind it expects and the Hugging Face family its checkpoints belong to. `tiny` and `small`
are Gemma-2-shaped (alternating local/global attention, attention and final-logit soft-caps,
post-norms), `tiny_gemma3` Gemma-3-shaped (q/k norms, 5:1 local/global, two rope bases, linear rope
scaling), so every code path of the real models runs in tests.
"""

from collections.abc import Callable
import dataclasses

from gemma import gm
import jax.numpy as jnp

from eva_jax.models import tokenizer as tokenizer_lib


@dataclasses.dataclass(frozen=True)
class Architecture:
  """How to build one named model."""

  make: Callable[[jnp.dtype], gm.nn.Transformer]  # param dtype -> module
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


TINY_CONFIG = cpu_sized_config(layers=3, width=128, heads=4, kv_heads=2, mlp=512)
TINY_GEMMA3_CONFIG = cpu_sized_gemma3_config(layers=6, width=128, heads=4, kv_heads=2, mlp=512)
SMALL_CONFIG = cpu_sized_config(layers=6, width=256, heads=8, kv_heads=4, mlp=1024)


def _fixed(cls, **kwargs) -> Callable[[jnp.dtype], gm.nn.Transformer]:
  return lambda dtype: cls(dtype=dtype, **kwargs)


def _custom(config) -> Callable[[jnp.dtype], gm.nn.Transformer]:
  return lambda dtype: gm.nn.Transformer(config=config, dtype=dtype)


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
}

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def build_model(name: str, param_dtype: str = "float32") -> gm.nn.Transformer:
  """The gemma `Transformer` module for architecture `name` with params in `param_dtype`."""
  if name not in ARCHITECTURES:
    raise ValueError(f"unknown model {name!r}; known: {sorted(ARCHITECTURES)}")
  if param_dtype not in DTYPES:
    raise ValueError(f"unknown param dtype {param_dtype!r}; known: {sorted(DTYPES)}")
  return ARCHITECTURES[name].make(DTYPES[param_dtype])
