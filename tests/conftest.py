"""Shared fixtures: 8 fake CPU devices, the embedded tokenizer and the tiny model, built once."""

import os

# Must be set before jax is imported anywhere in the test process.
os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import pytest  # noqa: E402

from eva_jax.models import architectures  # noqa: E402
from eva_jax.models import params as params_lib  # noqa: E402
from eva_jax.models import tokenizer as tokenizer_lib  # noqa: E402
from eva_jax.parallel import mesh as mesh_lib  # noqa: E402


@pytest.fixture(scope="session")
def tokenizer():
  return tokenizer_lib.load_tokenizer("embedded")


@pytest.fixture(scope="session")
def tiny_model():
  return architectures.build_model("tiny")


@pytest.fixture(scope="session")
def mesh1():
  return mesh_lib.make_mesh({"data": 1}, devices=jax.devices()[:1])


@pytest.fixture(scope="session")
def tiny_params(tiny_model, mesh1):
  """Tiny-model params on one device (float32)."""
  return params_lib.init_params(tiny_model, jax.random.key(0), params_lib.shardings_for(tiny_model, mesh1))


def pytest_configure(config):
  config.addinivalue_line("markers", "devices(n): needs n devices (8 fake CPU ones here; skipped on one GPU)")


def pytest_collection_modifyitems(config, items):
  for item in items:
    marker = item.get_closest_marker("devices")
    if marker and jax.device_count() < marker.args[0]:
      item.add_marker(pytest.mark.skip(reason=f"needs {marker.args[0]} devices, {jax.device_count()} here"))
