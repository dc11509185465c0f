"""Distributed start-up settings: flags over EVA_* variables, when to join, and single-process no-ops.

The multi-process behaviour itself (joining, global arrays, gathering) is exercised with real
processes in tests/launch/test_local_multihost.py.
"""

import io
import os

import jax
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
import numpy as np
import pytest
import tqdm
import tqdm.auto

from eva_jax.parallel import distributed
from eva_jax.parallel import mesh as mesh_lib

ENV = {"EVA_COORDINATOR_ADDRESS": "10.0.0.1:1234", "EVA_NUM_PROCESSES": "4", "EVA_PROCESS_ID": "3"}


def test_settings_come_from_the_environment_when_flags_are_unset():
  settings = distributed.settings_from(env=ENV)
  assert settings == distributed.Settings("auto", "10.0.0.1:1234", 4, 3)


def test_flags_override_the_environment():
  settings = distributed.settings_from("on", "127.0.0.1:9", 2, 0, env=ENV)
  assert settings == distributed.Settings("on", "127.0.0.1:9", 2, 0)


def test_jax_coordinator_variable_is_a_fallback():
  settings = distributed.settings_from(env={"JAX_COORDINATOR_ADDRESS": "h:1", "EVA_NUM_PROCESSES": "2"})
  assert settings.coordinator_address == "h:1"
  assert settings.num_processes == 2 and settings.process_id is None


@pytest.mark.parametrize(
  "kwargs,env,match",
  [
    ({}, {"EVA_NUM_PROCESSES": "two"}, "EVA_NUM_PROCESSES='two' is not an integer"),
    ({"mode": "maybe"}, {}, "distributed mode 'maybe'"),
    ({"num_processes": 0}, {}, "num_processes must be >= 1"),
    ({"num_processes": 2, "process_id": 2}, {}, r"process_id 2 is outside 0 \.\. 1"),
    ({}, {"EVA_PROCESS_ID": "-1"}, "process_id -1 is outside"),
  ],
)
def test_bad_settings_name_the_setting(kwargs, env, match):
  with pytest.raises(ValueError, match=match):
    distributed.settings_from(**kwargs, env=env)


@pytest.mark.parametrize(
  "settings,env,expected",
  [
    (distributed.Settings(), {}, False),  # a laptop: one process
    (distributed.Settings(num_processes=1), {}, False),
    (distributed.Settings(num_processes=2, coordinator_address="h:1", process_id=0), {}, True),
    (distributed.Settings(coordinator_address="h:1"), {}, True),  # JAX fills in the rest or fails
    (distributed.Settings(mode="off", num_processes=2), {}, False),
    (distributed.Settings(mode="on"), {}, True),  # a Cloud TPU VM: JAX detects everything
    (distributed.Settings(), {"TPU_WORKER_HOSTNAMES": "w0,w1,w2,w3"}, True),
    (distributed.Settings(), {"TPU_WORKER_HOSTNAMES": "w0"}, False),  # a single-host TPU VM
    (distributed.Settings(), {"MEGASCALE_COORDINATOR_ADDRESS": "w0:8080"}, True),
    (distributed.Settings(), {"SLURM_NTASKS": "8"}, True),
    (distributed.Settings(), {"SLURM_NTASKS": "1"}, False),
    (distributed.Settings(), {"OMPI_COMM_WORLD_SIZE": "2"}, True),
  ],
)
def test_when_to_join(settings, env, expected):
  assert distributed.should_initialize(settings, env) is expected


def test_single_process_initialises_nothing():
  assert distributed.initialize(distributed.Settings(num_processes=1)) is False
  assert distributed.initialize(distributed.Settings(mode="off", num_processes=8)) is False
  assert jax.process_count() == 1 and distributed.is_main_process()


def test_several_processes_need_a_coordinator_and_a_rank():
  with pytest.raises(ValueError, match="need a coordinator_address and a process_id"):
    distributed.initialize(distributed.Settings(num_processes=2, process_id=0))


def test_to_host_and_barrier_on_one_process():
  mesh = mesh_lib.make_mesh({"data": 2, "fsdp": 2, "tensor": 2})
  x = jax.device_put(np.arange(16.0).reshape(8, 2), NamedSharding(mesh, P(mesh_lib.BATCH_AXES)))
  tree = distributed.to_host({"x": x, "n": jax.numpy.int32(3)})
  distributed.barrier("noop")
  assert isinstance(tree["x"], np.ndarray)
  np.testing.assert_array_equal(tree["x"], np.arange(16.0).reshape(8, 2))
  assert tree["n"] == 3


def test_run_on_main_with_one_process_is_a_plain_call():
  out = distributed.run_on_main(lambda: [1.5, float("nan")], (2,))
  assert out.dtype == np.float32 and out[0] == 1.5 and np.isnan(out[1])
  with pytest.raises(KeyError, match="boom"):  # the original error, not a wrapper
    distributed.run_on_main(lambda: {}["boom"], (1,))


def test_quiet_progress_bars_disables_even_explicitly_enabled_bars(monkeypatch):
  monkeypatch.setattr(tqdm.std.tqdm, "__init__", tqdm.std.tqdm.__init__)  # restored after the test
  monkeypatch.setenv("TQDM_DISABLE", "")  # likewise
  stream = io.StringIO()
  with tqdm.tqdm(total=1, file=stream, disable=False) as bar:
    assert not bar.disable
  distributed.quiet_progress_bars()
  distributed.quiet_progress_bars()  # idempotent
  for bar_class in (tqdm.tqdm, tqdm.auto.tqdm):
    with bar_class(range(3), desc="quiet", file=stream, disable=False) as bar:
      assert bar.disable and list(bar) == [0, 1, 2]
  assert "quiet" not in stream.getvalue()
  assert os.environ["TQDM_DISABLE"] == "1"  # for child processes
