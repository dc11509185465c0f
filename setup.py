"""Install eva_jax: `pip install -e .[test]` (or `make test`, which uses the lock file)."""

import setuptools

setuptools.setup(
  name="eva_jax",
  version="0.1.0",
  description="eva (Evolving Alignment via Asymmetric Self-Play) in JAX for Gemma models.",
  packages=setuptools.find_packages(include=["eva_jax", "eva_jax.*"]),
  package_data={"eva_jax": ["assets/*"]},
  python_requires=">=3.12",
  install_requires=[
    "absl-py",
    "clu",  # metric writers (TensorBoard summaries, logs)
    "etils[epath]",
    "flax",
    "gemma>=4",
    "httpx",  # remote reward server client
    "importlib_resources",  # TFDS imports it but does not declare it.
    "jax",
    "ml-collections",
    "numpy",
    "openai",  # OpenAI-compatible chat endpoints for the LLM evolver
    "optax",
    "orbax-checkpoint",
    "pyarrow",  # Parquet and Hugging Face `save_to_disk` seed prompts (TFDS brings it too)
    "safetensors",  # Hugging Face checkpoints in and out, read tensor by tensor
    "sentencepiece<0.2.3",  # 0.2.3's generated proto needs protobuf 7; TF pins 6.
    "tensorflow-datasets",
    "tqdm",
  ],
  extras_require={
    "test": [
      "datasets",  # writes the Hugging Face `save_to_disk` directories the seed tests read
      "pytest",
      "pytest-xdist",
      "ruff",
      "torch",  # transformers' own Gemma forward, the reference the Hugging Face import is checked against
      "transformers",
      "ipykernel",
      "matplotlib",
      "nbclient",
      "nbformat",
    ],
    "notebooks": ["matplotlib"],
    "tpu": ["jax[tpu]"],
    "cuda": ["jax[cuda12]"],
  },
)
