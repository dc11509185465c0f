"""Answer files for the public benchmarks the paper reports, from question files the user provides.

    Arena-Hard   question.jsonl              -> <dir>/model_answer/<model_id>.jsonl
                 (v2 {uid, prompt}: arena-hard-auto since v2.0; v0.1 {question_id, turns}: before)
    MT-Bench     question.jsonl (two turns)  -> <dir>/model_answer/<model_id>.jsonl  (FastChat format)
    AlpacaEval   JSON list of instructions   -> JSON list of {"instruction", "output", "generator"}

Nothing is downloaded: the judges (arena-hard-auto, FastChat llm_judge, alpaca_eval) run elsewhere on
these files. `read_inputs` checks every question file before a model is loaded; each answer file is
written to a temporary name, checked by `validators` and only then renamed into place, so a judge
never picks up a half-written or malformed file. A question too long for the cache follows
`eva.export.long_prompts` (truncated from the left, or skipped and listed in
`<model_id>.skipped.json`); the counts are printed.

Arena-Hard v2 answers carry arena-hard-auto's style-control metadata: `token_len` and the markdown
header / list / bold counts of the answer (code blocks' inner text removed first, with its quirks), defined as its
`utils/add_markdown_info.py` defines them. `token_len` is counted with tiktoken's o200k_base (what
arena-hard-auto uses, `encoding_for_model("gpt-4o")`) when tiktoken and that encoding are available,
else with the solver's tokenizer; `token_len_tokenizer` in each answer says which.
"""

from collections.abc import Callable
from collections.abc import Sequence
import dataclasses
import hashlib
import json
import re
import sys
import time

from etils import epath

from eva_jax.evaluation import generation
from eva_jax.evaluation import validators
from eva_jax.evaluation.config import ExportConfig

# FastChat llm_judge's per-category answer temperatures for MT-Bench (common.temperature_config);
# arena-hard-auto v0.1 applies the same table. Categories not listed use the configured temperature.
CATEGORY_TEMPERATURES = {
  "writing": 0.7,
  "roleplay": 0.7,
  "extraction": 0.0,
  "math": 0.0,
  "coding": 0.0,
  "reasoning": 0.0,
  "stem": 0.1,
  "humanities": 0.1,
}


@dataclasses.dataclass(frozen=True)
class Exported:
  """Where one benchmark's answers went."""

  benchmark: str  # "arena_hard", "alpaca_eval" or "mt_bench"
  path: epath.Path
  count: int  # answers written
  truncated: int = 0  # questions cut from the left to fit the cache
  skipped: int = 0  # questions left out (listed in <model_id>.skipped.json)


def _write_checked(path: epath.Path, text: str, check: Callable[[epath.Path], int]) -> int:
  """Writes `text` to a temporary file, checks it, then renames it to `path` (nothing on failure)."""
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.parent / f".{path.name}.tmp"
  tmp.write_text(text)
  try:
    count = check(tmp)
  except Exception:
    tmp.unlink()
    raise
  tmp.replace(path)
  return count


def _jsonl(records: Sequence[dict]) -> str:
  return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


def answer_id(model_id: str, question_id, turns: Sequence[str]) -> str:
  """A stable id for one answer (the benchmarks use random short uuids; any unique string is read)."""
  digest = hashlib.sha256(json.dumps([model_id, question_id, list(turns)]).encode()).hexdigest()
  return digest[:22]


_CODE_BLOCK = re.compile(r"```([^`]*)```")  # arena-hard-auto's pattern; the group is the block's inner text
_MARKDOWN = {
  "header_count": {f"h{n}": re.compile(rf"^#{{{n}}}\s", re.MULTILINE) for n in range(1, 7)},
  "list_count": {
    "ordered": re.compile(r"^\s*\d+\.\s", re.MULTILINE),
    "unordered": re.compile(r"^\s*[-*+]\s", re.MULTILINE),
  },
  "bold_count": {"**": re.compile(r"\*\*[^*\n]+\*\*"), "__": re.compile(r"__[^_\n]+__")},
}


def _without_code(answer: str) -> str:
  """The answer as arena-hard-auto's `remove_pattern` leaves it before counting, quirks included.

  Each code block's inner text (not the block) is deleted with `str.replace`, so it goes wherever
  else it occurs too and the fences stay; an empty block "```\n```" deletes every newline. Matching
  it exactly keeps the style-control features equal to the leaderboard's.
  """
  for inner in _CODE_BLOCK.findall(answer):
    answer = answer.replace(inner, "")
  return answer


def markdown_counts(answer: str) -> dict[str, dict[str, int]]:
  """arena-hard-auto's style features of an answer: headers by level, list items, bold spans."""
  text = _without_code(answer)
  return {group: {k: len(rx.findall(text)) for k, rx in rxs.items()} for group, rxs in _MARKDOWN.items()}


def token_counter(respond) -> tuple[str, Callable[[str], int]]:
  """(name, count): tiktoken's o200k_base when it loads here (no download is attempted beyond
  tiktoken's own cache), else the solver's tokenizer."""
  try:
    import tiktoken  # noqa: PLC0415  (optional; not a dependency)

    encoding = tiktoken.get_encoding("o200k_base")
    return "tiktoken o200k_base", lambda text: len(encoding.encode(text, disallowed_special=()))
  except Exception:  # noqa: BLE001  (not installed, or its encoding file cannot be fetched offline)
    return "solver", respond.count_tokens


@dataclasses.dataclass(frozen=True)
class _AnswerFormat:
  """How one benchmark's `question.jsonl` becomes its `model_answer/<model>.jsonl` records."""

  read: Callable[[epath.PathLike], list[dict]]  # validated questions
  check: Callable[..., int]  # (path, questions, model) -> count: validates the written file


ANSWER_FORMATS = {
  "arena_hard": _AnswerFormat(validators.read_arena_hard_questions, validators.check_arena_hard_answers),
  "mt_bench": _AnswerFormat(validators.read_mt_bench_questions, validators.check_mt_bench_answers),
}


def _question_turns(benchmark: str, question: dict) -> list[str]:
  if benchmark == "mt_bench":
    return question["turns"]
  if "uid" in question:  # Arena-Hard v2
    return [question["prompt"]]
  return [turn["content"] for turn in question["turns"]]


def _answer_record(benchmark: str, question: dict, turns: list[str], model_id: str, tokens) -> dict:
  if benchmark == "arena_hard" and "uid" in question:  # arena-hard-auto v2 (gen_answer.py's layout)
    name, count = tokens
    return {
      "uid": question["uid"],
      "ans_id": answer_id(model_id, question["uid"], turns),
      "model": model_id,
      "messages": [
        {"role": "user", "content": question["prompt"]},
        {"role": "assistant", "content": {"answer": turns[0]}},
      ],
      "tstamp": time.time(),
      "metadata": {"token_len": count(turns[0]), **markdown_counts(turns[0])},
      "token_len_tokenizer": name,
    }
  if benchmark == "arena_hard":  # v0.1: FastChat-style turns with token_len
    name, count = tokens
    content = [{"content": answer, "token_len": count(answer)} for answer in turns]
  else:
    content = list(turns)
  return {
    "question_id": question["question_id"],
    "answer_id": answer_id(model_id, question["question_id"], turns),
    "model_id": model_id,
    "choices": [{"index": 0, "turns": content}],
    "tstamp": time.time(),
  }


def _qid(question: dict):
  return question.get("uid", question.get("question_id"))


def _report_fitted(respond, before: int, benchmark: str, path: epath.Path) -> tuple[int, int, list[dict]]:
  """(truncated, skipped, skipped rows) of the questions `respond` fitted since `before`; printed."""
  fitted = list(getattr(respond, "fitted", [])[before:])
  truncated = sum(f.cut_tokens is not None for f in fitted)
  skipped = [dataclasses.asdict(f) for f in fitted if f.cut_tokens is None]
  if fitted:
    cut = sum(f.cut_tokens or 0 for f in fitted)
    print(
      f"{benchmark}: {truncated} question(s) cut from the left to fit the cache ({cut} tokens in all), "
      f"{len(skipped)} skipped{f' (listed in {path})' if skipped else ''}; answers up to "
      f"{fitted[0].limit} prompt tokens",
      file=sys.stderr,
      flush=True,
    )
  return truncated, len(skipped), skipped


def export_answers(
  benchmark: str,
  respond: generation.Responder,
  question_file: epath.PathLike,
  out_dir: epath.PathLike,
  model_id: str,
  *,
  category_temperatures: bool = False,
) -> Exported:
  """Answers the questions of `benchmark` ("arena_hard" or "mt_bench"), each turn with the earlier
  questions and answers in context; writes `<out_dir>/model_answer/<model_id>.jsonl`.

  `category_temperatures`: questions of a CATEGORY_TEMPERATURES category use its temperature (v0.1
  Arena-Hard and MT-Bench categories; v2's categories are not in the table).
  """
  if benchmark not in ANSWER_FORMATS:
    raise ValueError(f"unknown benchmark {benchmark!r}; expected one of {sorted(ANSWER_FORMATS)}")
  form = ANSWER_FORMATS[benchmark]
  validators.check_model_id(model_id)
  questions = form.read(question_file)
  temperatures = [
    CATEGORY_TEMPERATURES.get(q["category"]) if category_temperatures else None for q in questions
  ]
  before = len(getattr(respond, "fitted", []))
  answers = generation.answer_conversations(
    respond, [_question_turns(benchmark, q) for q in questions], temperatures
  )
  tokens = token_counter(respond) if benchmark == "arena_hard" else None
  answered = [(q, turns) for q, turns in zip(questions, answers) if None not in turns]
  path = epath.Path(out_dir) / "model_answer" / f"{model_id}.jsonl"
  skipped_path = path.parent / f"{model_id}.skipped.json"
  truncated, skipped, rows = _report_fitted(respond, before, benchmark, skipped_path)
  if not answered:
    raise ValueError(f"{benchmark}: every question was skipped as too long for the cache; nothing written")
  records = [_answer_record(benchmark, q, turns, model_id, tokens) for q, turns in answered]
  check = lambda tmp: form.check(tmp, [q for q, _ in answered], model_id)
  count = _write_checked(path, _jsonl(records), check)
  if rows:
    skipped_ids = [_qid(q) for q, turns in zip(questions, answers) if None in turns]
    skipped_path.write_text(json.dumps([dict(r, id=i) for r, i in zip(rows, skipped_ids)], indent=1))
  elif skipped_path.exists():
    skipped_path.unlink()  # from an earlier export of the same model
  return Exported(benchmark, path, count, truncated, skipped)


def export_alpaca_eval(
  respond: generation.Responder, instruction_file: epath.PathLike, out_file: epath.PathLike, generator: str
) -> Exported:
  """Answers AlpacaEval instructions; writes a JSON list of {"instruction", "output", "generator"}
  (plus "dataset" where the input has it), in input order; skipped instructions are left out."""
  validators.check_model_id(generator)
  items = validators.read_alpaca_eval_instructions(instruction_file)
  before = len(getattr(respond, "fitted", []))
  outputs = respond([item["instruction"] for item in items], 0, None)
  path = epath.Path(out_file)
  skipped_path = path.parent / "skipped.json"
  truncated, skipped, rows = _report_fitted(respond, before, "alpaca_eval", skipped_path)
  kept = [(item, output) for item, output in zip(items, outputs) if output is not None]
  if not kept:
    raise ValueError("alpaca_eval: every instruction was skipped as too long for the cache; nothing written")
  records = [
    {"instruction": item["instruction"], "output": output, "generator": generator}
    | ({"dataset": item["dataset"]} if "dataset" in item else {})
    for item, output in kept
  ]
  text = json.dumps(records, ensure_ascii=False, indent=2) + "\n"
  count = _write_checked(
    path, text, lambda tmp: validators.check_alpaca_eval_outputs(tmp, [i for i, _ in kept])
  )
  if rows:
    skipped_path.write_text(json.dumps(rows, indent=1))
  elif skipped_path.exists():
    skipped_path.unlink()
  return Exported("alpaca_eval", path, count, truncated, skipped)


def read_inputs(cfg: ExportConfig) -> dict[str, int]:
  """Reads and checks every question file `cfg` names, before any model is loaded; {benchmark: count}.

  Raises FormatError (a ValueError) naming the file, line and field, or FileNotFoundError.
  """
  found = {}
  for benchmark, path, read in (
    ("arena_hard", cfg.arena_hard_questions, validators.read_arena_hard_questions),
    ("mt_bench", cfg.mt_bench_questions, validators.read_mt_bench_questions),
    ("alpaca_eval", cfg.alpaca_eval_instructions, validators.read_alpaca_eval_instructions),
  ):
    if path:
      if not epath.Path(path).exists():
        raise FileNotFoundError(f"config.eval.export: the {benchmark} question file {path} does not exist")
      found[benchmark] = len(read(path))
  return found


def run_exports(
  respond_for: Callable[[str], generation.Responder], cfg: ExportConfig, out_dir: epath.PathLike
) -> list[Exported]:
  """Every benchmark whose question file `cfg` names: `<out_dir>/arena_hard/model_answer/<model_id>.jsonl`,
  `<out_dir>/mt_bench/model_answer/<model_id>.jsonl`, `<out_dir>/alpaca_eval/<model_id>/model_outputs.json`.

  `respond_for(benchmark)` gives the responder of a benchmark (its answer length may differ).
  """
  out_dir, done = epath.Path(out_dir), []
  for benchmark, question_file in (
    ("arena_hard", cfg.arena_hard_questions),
    ("mt_bench", cfg.mt_bench_questions),
  ):
    if question_file:
      respond = respond_for(benchmark)
      print(
        f"{benchmark}: answers up to {respond.sampling.max_new_tokens} tokens per turn "
        f"(cache {respond.sampling.max_cache_length})",
        file=sys.stderr,
        flush=True,
      )
      done.append(
        export_answers(
          benchmark,
          respond,
          question_file,
          out_dir / benchmark,
          cfg.model_id,
          category_temperatures=cfg.category_temperatures,
        )
      )
  if cfg.alpaca_eval_instructions:
    out_file = out_dir / "alpaca_eval" / cfg.model_id / "model_outputs.json"
    done.append(
      export_alpaca_eval(respond_for("alpaca_eval"), cfg.alpaca_eval_instructions, out_file, cfg.model_id)
    )
  return done
