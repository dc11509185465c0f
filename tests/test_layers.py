"""The package's layers: every import of an eva_jax module points down (or sideways within a package).

A folder-level import cycle or an import that runs up the layers fails here with the file that
makes it. `LAYERS` is the design: the ground floor first, the commands last.
"""

import ast
import pathlib

ROOT = pathlib.Path(__file__).parent.parent / "eva_jax"

# Bottom to top. A unit is a package folder or a top-level module of eva_jax; a unit may import the
# units of lower layers only (and itself). Units of one layer do not import each other.
LAYERS = (
  ("config_fields", "state_files", "config_files", "tasks"),  # plain Python: validators, files, tasks
  ("parallel",),  # mesh, partition rules, multi-host
  ("models",),  # architectures, params I/O, tokenizers, log-probs
  ("sampling", "solver"),  # decode; losses and train steps
  ("rewards",),
  ("creator",),
  ("evaluation",),
  ("loop",),  # the eva run
  ("analysis", "scale"),  # read-only views of runs; whole-stack inspection at real size
  ("config",),  # every section's config parsed together
  ("jobs",),  # the commands
  ("main", "__init__"),
)
RANK = {unit: i for i, layer in enumerate(LAYERS) for unit in layer}


def unit_of(path: pathlib.Path, root: pathlib.Path = ROOT) -> str:
  rel = path.relative_to(root)
  return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def imported_units(path: pathlib.Path) -> list[tuple[int, str]]:
  """(line, unit) of every eva_jax module `path` imports, at any depth of the file."""
  found = []
  for node in ast.walk(ast.parse(path.read_text())):
    names = []
    if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "eva_jax":
      names = [f"{node.module}.{alias.name}" for alias in node.names]
    elif isinstance(node, ast.Import):
      names = [alias.name for alias in node.names if alias.name.split(".")[0] == "eva_jax"]
    found += [(node.lineno, name.split(".")[1]) for name in names if len(name.split(".")) > 1]
  return found


def test_every_unit_has_a_layer():
  units = {unit_of(p) for p in ROOT.rglob("*.py")}
  assert units - set(RANK) == set(), "add the new package or module to LAYERS"


def test_no_import_runs_up_the_layers():
  wrong = []
  for path in sorted(ROOT.rglob("*.py")):
    unit = unit_of(path)
    for line, target in imported_units(path):
      if target != unit and RANK[target] >= RANK[unit]:
        wrong.append(
          f"{path.relative_to(ROOT.parent)}:{line} ({unit}, layer {RANK[unit]}) imports {target} (layer {RANK[target]})"
        )
  assert wrong == []


def test_the_check_sees_an_import_that_runs_up(tmp_path):
  bad = tmp_path / "eva_jax" / "models" / "bad.py"
  bad.parent.mkdir(parents=True)
  bad.write_text("import jax\n\n\ndef f():\n  from eva_jax.loop import runner\n")
  unit = unit_of(bad, tmp_path / "eva_jax")
  assert (unit, imported_units(bad)) == ("models", [(5, "loop")])
  assert RANK["loop"] > RANK[unit]


def test_a_unit_has_one_layer():
  units = [unit for layer in LAYERS for unit in layer]
  assert len(units) == len(set(units))
