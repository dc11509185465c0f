"""Readers of the benchmarks' question files and checks of our answer files, field by field.

Each function checks the fields that the benchmark's own code reads (named in its docstring), so a
file that passes loads and judges there. Problems raise `FormatError` naming the file, the line (JSONL)
or item (JSON list) and the field, e.g. `question.jsonl: line 3: field 'turns[0].content' must be a
string, got 5`. Blank JSONL lines are skipped, as the benchmarks' loaders skip them.
"""

from collections.abc import Callable
from collections.abc import Sequence
import json
import re

from etils import epath

MODEL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")  # it names files: no separators, no leading dot
_KIND_NAMES = {str: "a string", int: "an integer", float: "a number", list: "a list", dict: "an object"}
_SHOWN = 5  # missing ids listed in a message

Record = tuple[str, dict]  # (where: "path: line N" or "path: item N", the parsed object)


class FormatError(ValueError):
  """A question or answer file does not have the fields its benchmark reads."""


def check_model_id(model_id: str) -> str:
  if not isinstance(model_id, str) or not MODEL_ID.fullmatch(model_id):
    raise ValueError(f"model id {model_id!r} must match {MODEL_ID.pattern} (it names the answer file)")
  return model_id


def _read_text(path: epath.Path) -> str:
  try:
    return path.read_bytes().decode("utf-8")
  except UnicodeDecodeError as e:
    raise FormatError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None


def load_jsonl(path: epath.PathLike) -> list[Record]:
  """Non-blank lines of a JSONL file, each a JSON object."""
  path = epath.Path(path)
  records = []
  # Split on "\n" only: str.splitlines would also split inside strings holding U+2028 and the like.
  for number, line in enumerate(_read_text(path).split("\n"), start=1):
    if not line.strip():
      continue
    where = f"{path}: line {number}"
    try:
      record = json.loads(line)
    except json.JSONDecodeError as e:
      raise FormatError(f"{where}: not valid JSON ({e.msg} at column {e.colno})") from None
    if not isinstance(record, dict):
      raise FormatError(f"{where}: expected a JSON object, got {type(record).__name__}")
    records.append((where, record))
  if not records:
    raise FormatError(f"{path}: no records")
  return records


def load_json_list(path: epath.PathLike) -> list[Record]:
  """The items of a JSON file holding one list of objects."""
  path = epath.Path(path)
  try:
    items = json.loads(_read_text(path))
  except json.JSONDecodeError as e:
    raise FormatError(f"{path}: not valid JSON ({e.msg} at line {e.lineno}, column {e.colno})") from None
  if not isinstance(items, list):
    raise FormatError(f"{path}: expected a JSON list of objects, got {type(items).__name__}")
  if not items:
    raise FormatError(f"{path}: no records")
  for index, item in enumerate(items):
    if not isinstance(item, dict):
      raise FormatError(f"{path}: item {index}: expected a JSON object, got {type(item).__name__}")
  return [(f"{path}: item {index}", item) for index, item in enumerate(items)]


def field(record, key: str, kinds, where: str, name: str | None = None, *, nonempty: bool = False):
  """`record[key]`, checked to be one of `kinds` (JSON booleans are never numbers); `name` is its path."""
  name = name or key
  if not isinstance(record, dict):
    raise FormatError(f"{where}: {name.rsplit('.', 1)[0]!r} must be an object with field {key!r}")
  if key not in record:
    raise FormatError(f"{where}: missing field {name!r}")
  value = record[key]
  kinds = kinds if isinstance(kinds, tuple) else (kinds,)
  if isinstance(value, bool) or not isinstance(value, kinds):
    expected = " or ".join(_KIND_NAMES[k] for k in kinds)
    raise FormatError(f"{where}: field {name!r} must be {expected}, got {json.dumps(value)[:40]}")
  if nonempty and not (value.strip() if isinstance(value, str) else value):
    raise FormatError(f"{where}: field {name!r} is empty")
  return value


def _question_id(record: dict, where: str):
  return field(record, "question_id", (int, str), where)


def _unique_ids(records: Sequence[Record], key: str = "question_id") -> None:
  first = {}
  for where, record in records:
    qid = record[key]
    if qid in first:
      raise FormatError(f"{where}: {key} {qid!r} repeats {first[qid]}")
    first[qid] = where


ARENA_HARD_V2 = "v2"  # arena-hard-auto since v2.0 (April 2025): {uid, category, prompt}; answers by uid
ARENA_HARD_V01 = "v0.1"  # the FastChat-style layout before it: {question_id, category, turns}


def arena_hard_format(questions: Sequence[dict]) -> str:
  """ARENA_HARD_V2 or ARENA_HARD_V01: the layout of questions read by `read_arena_hard_questions`."""
  return ARENA_HARD_V2 if "uid" in questions[0] else ARENA_HARD_V01


def read_arena_hard_questions(path: epath.PathLike) -> list[dict]:
  """Arena-Hard `question.jsonl` in either layout, detected from the first record.

  v2 (arena-hard-auto since v2.0, its v0.1 data reformatted too): `{"uid": str, "category": str,
  "prompt": str, "subcategory"?/"cluster"?: str}`; gen_answer.py and gen_judgment.py read uid,
  category and prompt. v0.1 (before April 2025): `{"question_id", "category", "turns": [{"content":
  str}, ...]}`; gen_answer.py read question_id, category and turns[j]["content"]. A file mixing the
  two is refused. Image turns (content lists) are not supported.
  """
  records = load_jsonl(path)
  v2 = "uid" in records[0][1]
  for where, question in records:
    if ("uid" in question) != v2:
      raise FormatError(
        f"{where}: mixes Arena-Hard layouts: the first record has "
        + ("'uid' (v2)" if v2 else "'question_id' (v0.1)")
        + ", this one does not"
      )
    field(question, "category", str, where)
    if v2:
      field(question, "uid", str, where, nonempty=True)
      field(question, "prompt", str, where, nonempty=True)
      for optional in ("subcategory", "cluster"):
        if optional in question:
          field(question, optional, str, where)
      continue
    _question_id(question, where)
    turns = field(question, "turns", list, where, nonempty=True)
    for j, turn in enumerate(turns):
      field(turn, "content", str, where, f"turns[{j}].content", nonempty=True)
  _unique_ids(records, "uid" if v2 else "question_id")
  return [question for _, question in records]


def read_mt_bench_questions(path: epath.PathLike) -> list[dict]:
  """MT-Bench (FastChat llm_judge) `question.jsonl`: `{"question_id", "category", "turns": [str, str]}`.

  FastChat's gen_model_answer.py reads question_id, category (per-category temperature) and turns;
  gen_judgment.py reads question_id, category (reference-answer categories) and turns[0], turns[1].
  """
  records = load_jsonl(path)
  for where, question in records:
    _question_id(question, where)
    field(question, "category", str, where)
    turns = field(question, "turns", list, where)
    if len(turns) != 2:
      raise FormatError(
        f"{where}: field 'turns' must hold 2 questions (MT-Bench is two-turn), got {len(turns)}"
      )
    for j, turn in enumerate(turns):
      _string_turn(turn, where, f"turns[{j}]", nonempty=True)
  _unique_ids(records)
  return [question for _, question in records]


def read_alpaca_eval_instructions(path: epath.PathLike) -> list[dict]:
  """AlpacaEval evaluation set: a JSON list of `{"instruction": str, "dataset"?: str, ...}`.

  alpaca_eval prompts the model with "instruction" and keeps "dataset" next to the outputs
  (main.evaluate_from_model); other fields (e.g. reference outputs) are ignored here.
  """
  records = load_json_list(path)
  for where, item in records:
    field(item, "instruction", str, where, nonempty=True)
    if "dataset" in item:
      field(item, "dataset", str, where)
  return [item for _, item in records]


def _answer_turns(answer: dict, where: str) -> list:
  choices = field(answer, "choices", list, where, nonempty=True)
  field(choices[0], "index", int, where, "choices[0].index")
  return field(choices[0], "turns", list, where, "choices[0].turns", nonempty=True)


def _answer_header(answer: dict, where: str, model: str) -> None:
  _question_id(answer, where)
  field(answer, "answer_id", str, where, nonempty=True)
  model_id = field(answer, "model_id", str, where)
  if model_id != model:
    raise FormatError(f"{where}: model_id {model_id!r} differs from the file's model name {model!r}")
  field(answer, "tstamp", (int, float), where)


def _model_of(path: epath.Path) -> str:
  if not path.name.endswith(".jsonl"):
    raise FormatError(f"{path}: an answer file is named <model>.jsonl")
  return path.name[: -len(".jsonl")]


def _match_questions(answers: Sequence[tuple[str, dict, int]], questions: Sequence[dict], path) -> None:
  """Every answer is to a question of the file, with one answer per question turn, and none is missing."""
  turns = {q["question_id"]: len(q["turns"]) for q in questions}
  for where, answer, answered in answers:
    qid = answer["question_id"]
    if qid not in turns:
      raise FormatError(f"{where}: question_id {qid!r} is not in the question file")
    if answered != turns[qid]:
      raise FormatError(f"{where}: {answered} answer turn(s) for a question of {turns[qid]} turn(s)")
  missing = sorted(set(turns) - {a["question_id"] for _, a, _ in answers}, key=str)
  if missing:
    raise FormatError(f"{path}: no answer to {len(missing)} question(s): {missing[:_SHOWN]}")


def _check_answer_file(
  path, questions: Sequence[dict] | None, check_turn: Callable[[object, str, str], None], model: str | None
) -> int:
  """The checks FastChat-style answer files share; `check_turn(turn, where, name)` checks one turn."""
  path = epath.Path(path)
  model = model or _model_of(path)
  records = load_jsonl(path)
  checked = []
  for where, answer in records:
    _answer_header(answer, where, model)
    turns = _answer_turns(answer, where)
    for j, turn in enumerate(turns):
      check_turn(turn, where, f"choices[0].turns[{j}]")
    checked.append((where, answer, len(turns)))
  _unique_ids(records)
  if questions is not None:
    _match_questions(checked, questions, path)
  return len(records)


def _arena_hard_turn(turn, where: str, name: str) -> None:
  field(turn, "content", str, where, f"{name}.content")
  if field(turn, "token_len", int, where, f"{name}.token_len") < 0:
    raise FormatError(f"{where}: field '{name}.token_len' is negative")


def _string_turn(turn, where: str, name: str, nonempty: bool = False) -> None:
  if not isinstance(turn, str) or (nonempty and not turn.strip()):
    kind = "a non-empty string" if nonempty else "a string"
    raise FormatError(f"{where}: field '{name}' must be {kind}, got {json.dumps(turn)[:40]}")


_MARKDOWN_COUNTS = {
  "header_count": ("h1", "h2", "h3", "h4", "h5", "h6"),
  "list_count": ("ordered", "unordered"),
  "bold_count": ("**", "__"),
}


def _check_v2_answer(answer: dict, where: str, model: str) -> None:
  field(answer, "uid", str, where, nonempty=True)
  field(answer, "ans_id", str, where, nonempty=True)
  if field(answer, "model", str, where) != model:
    raise FormatError(f"{where}: model {answer['model']!r} differs from the file's model name {model!r}")
  field(answer, "tstamp", (int, float), where)
  messages = field(answer, "messages", list, where, nonempty=True)
  last = len(messages) - 1
  for j, message in enumerate(messages):
    role = field(message, "role", str, where, f"messages[{j}].role")
    if role not in ("system", "user", "assistant") or (j == last) != (role == "assistant"):
      raise FormatError(
        f"{where}: field 'messages[{j}].role' is {role!r}; only the last message is the assistant's"
      )
    if j < last:
      field(message, "content", str, where, f"messages[{j}].content")
  content = field(messages[last], "content", dict, where, f"messages[{last}].content")
  field(content, "answer", str, where, f"messages[{last}].content.answer")
  metadata = field(answer, "metadata", dict, where)
  if field(metadata, "token_len", int, where, "metadata.token_len") < 0:
    raise FormatError(f"{where}: field 'metadata.token_len' is negative")
  for group, keys in _MARKDOWN_COUNTS.items():
    counts = field(metadata, group, dict, where, f"metadata.{group}")
    for key in keys:
      field(counts, key, int, where, f"metadata.{group}.{key}")


def check_arena_hard_answers(
  path: epath.PathLike, questions: Sequence[dict] | None = None, model: str | None = None
) -> int:
  """Checks `model_answer/<model>.jsonl` for arena-hard-auto; returns the number of answers.

  v2 (answers with "uid"): utils.completion.load_model_answers keys lines by uid under the file's
  name; gen_judgment.py reads messages[-1]["content"]["answer"]; show_result.py reads "model" and the
  "metadata" (token_len, then the header/list/bold counts) for style control. v0.1: lines keyed by
  question_id; choices[0]["turns"][i]["content"] and ["token_len"]. With `questions` (of the same
  layout), every question must have exactly one answer, and nothing else. `model`: the name the file
  will have (default: from `path`), so a temporary file can be checked before it is renamed.
  """
  path = epath.Path(path)
  if questions is not None and arena_hard_format(questions) == ARENA_HARD_V01:
    return _check_answer_file(path, questions, _arena_hard_turn, model)
  model = model or _model_of(path)
  records = load_jsonl(path)
  if questions is None and "uid" not in records[0][1]:
    return _check_answer_file(path, None, _arena_hard_turn, model)
  for where, answer in records:
    _check_v2_answer(answer, where, model)
  _unique_ids(records, "uid")
  if questions is not None:
    wanted = {q["uid"] for q in questions}
    for where, answer in records:
      if answer["uid"] not in wanted:
        raise FormatError(f"{where}: uid {answer['uid']!r} is not in the question file")
    missing = sorted(wanted - {a["uid"] for _, a in records})
    if missing:
      raise FormatError(f"{path}: no answer to {len(missing)} question(s): {missing[:_SHOWN]}")
  return len(records)


def check_mt_bench_answers(
  path: epath.PathLike, questions: Sequence[dict] | None = None, model: str | None = None
) -> int:
  """Checks `model_answer/<model>.jsonl` for FastChat's MT-Bench judge; returns the number of answers.

  common.load_model_answers keys lines by question_id under the file's name; the judges read
  choices[0]["turns"][0] and, for the second turn, choices[0]["turns"][1] (strings). With
  `questions`, every question must have exactly one answer with one turn per question turn.
  """
  return _check_answer_file(path, questions, _string_turn, model)


def check_alpaca_eval_outputs(path: epath.PathLike, instructions: Sequence[dict] | None = None) -> int:
  """Checks AlpacaEval model outputs (a JSON list); returns the number of outputs.

  alpaca_eval reads the file with pandas (utils.load_or_convert_to_dataframe); main.evaluate names the
  model after its one "generator" value, and the annotators pair each "output" with the reference
  output of the same "instruction". With `instructions`, the outputs must follow them one to one, in
  order, with the same "dataset" where the input has one.
  """
  records = load_json_list(path)
  for where, item in records:
    field(item, "instruction", str, where, nonempty=True)
    field(item, "output", str, where)
    field(item, "generator", str, where, nonempty=True)
    if "dataset" in item:
      field(item, "dataset", str, where)
  generators = sorted({item["generator"] for _, item in records})
  if len(generators) != 1:
    raise FormatError(
      f"{epath.Path(path)}: outputs of one model have one generator, got {generators[:_SHOWN]}"
    )
  if instructions is not None:
    if len(instructions) != len(records):
      raise FormatError(f"{epath.Path(path)}: {len(records)} outputs for {len(instructions)} instructions")
    for (where, item), source in zip(records, instructions):
      for key in ("instruction", "dataset"):
        if item.get(key) != source.get(key):
          raise FormatError(f"{where}: field {key!r} is {item.get(key)!r}, the input has {source.get(key)!r}")
  return len(records)
