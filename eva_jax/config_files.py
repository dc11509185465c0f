"""Config files that build on a sibling config file, loaded by path.

`--config=/abs/path/configs/gemma2_9b_dpo.py` is read by ml_collections from any current
directory, but a config that wrote `from configs import quickstart` found its sibling only with the
checkout as the current directory (elsewhere: a raw ModuleNotFoundError during flag parsing).
`sibling(__file__, "quickstart")` loads `quickstart.py` from the caller's own folder instead.
"""

import importlib.util
import pathlib
import types


def sibling(config_file: str, name: str) -> types.ModuleType:
  """The config module `name` (e.g. "quickstart") beside `config_file` (the caller's `__file__`)."""
  path = pathlib.Path(config_file).resolve().parent / f"{name}.py"
  if not path.is_file():
    raise FileNotFoundError(f"{config_file} builds on {path}, which does not exist")
  spec = importlib.util.spec_from_file_location(f"_eva_config_{name}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module
