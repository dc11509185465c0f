"""`python -m eva_jax.main --mode=plan`: the memory plan from the command line, before any launch.

The figures themselves are checked by hand in tests/scale/test_memory_plan.py; here the flags,
the config override of the mesh and the JSON file. gemma2_9b needs no checkpoint or tokenizer.
"""

import json
import re


def test_plan_mode_prints_and_writes_the_plan(jobs):
  code, output = jobs["plan"].result()
  assert code == 0, output[-3000:]
  assert "memory plan: gemma2_9b (9,242,164,736 params) on v5e-64" in output
  assert "mesh {'data': 1, 'fsdp': 8, 'tensor': 8}" in output
  assert "fits: every phase within 90% of device memory" in output
  figures = json.loads((jobs["tmp"] / "plan" / "memory_plan.json").read_text())
  assert figures["mesh"] == {"data": 1, "fsdp": 8, "tensor": 8} and figures["fits"]
  # fsdp 8 x tensor 8 splits every matrix 64 ways, like fsdp 16 x tensor 4 (8 KV heads over 8).
  assert figures["bytes"]["params"] == 2 * 145_005_056
  assert set(figures["peaks"]) == {"train step", "sampling"}


def test_the_gemma2_9b_docstring_quotes_the_memory_plan():
  """configs/gemma2_9b.py lists which topologies fit: the table must match the plan itself."""
  from configs import gemma2_9b
  from eva_jax.scale import memory_plan

  rows = re.findall(
    r"^    ([a-z0-9]+-\d+) .*?(\d+\.\d) GiB of \d+ +(does not fit|fits)", gemma2_9b.__doc__, re.M
  )
  assert len(rows) >= 6
  for topology, peak, verdict in rows:
    plan = memory_plan.plan_for_config(gemma2_9b.get_config(), topology)
    assert plan.fits == (verdict == "fits"), topology
    assert round(plan.phase_peaks()["train step"] / memory_plan.GIB, 1) == float(peak), topology
