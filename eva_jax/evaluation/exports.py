"""Answer files for the public benchmarks the paper reports, from question files the user provides.

    Arena-Hard   question.jsonl              -> <dir>/model_answer/<model_id>.jsonl
    MT-Bench     question.jsonl (two turns)  -> <dir>/model_answer/<model_id>.jsonl  (FastChat format)
    AlpacaEval   JSON list of instructions   -> JSON list of {"instruction", "output", "generator"}

Nothing is downloaded: the judges (arena-hard-auto, FastChat llm_judge, alpaca_eval) run elsewhere on
these files. Every file is checked by `validators` before this module returns its path, and written
atomically, so a crash never leaves a half-written answer file for a judge to pick up.
"""

from collections.abc import Callable
from collections.abc import Sequence
import dataclasses
import hashlib
import json
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


def _write_atomic(path: epath.Path, text: str) -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.parent / f".{path.name}.tmp"
  tmp.write_text(text)
  tmp.replace(path)


def _write_jsonl(path: epath.Path, records: Sequence[dict]) -> None:
  _write_atomic(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


def answer_id(model_id: str, question_id, turns: Sequence[str]) -> str:
  """A stable id for one answer (the benchmarks use random short uuids; any unique string is read)."""
  digest = hashlib.sha256(json.dumps([model_id, question_id, list(turns)]).encode()).hexdigest()
  return digest[:22]


@dataclasses.dataclass(frozen=True)
class _AnswerFormat:
  """How one benchmark's `question.jsonl` becomes its FastChat-style `model_answer/<model>.jsonl`."""

  read: Callable[[epath.PathLike], list[dict]]  # validated questions
  questions: Callable[[dict], list[str]]  # a question's user turns
  turn: Callable[[generation.Responder, str], object]  # one answer as the file holds it
  check: Callable[[epath.Path, list[dict]], int]  # validates the written file


ANSWER_FORMATS = {
  # Turns hold content and token_len (counted with the solver's tokenizer; arena-hard-auto counts
  # gpt-3.5-turbo tokens, which only changes the average length its leaderboard prints).
  "arena_hard": _AnswerFormat(
    validators.read_arena_hard_questions,
    lambda q: [turn["content"] for turn in q["turns"]],
    lambda respond, answer: {"content": answer, "token_len": respond.count_tokens(answer)},
    validators.check_arena_hard_answers,
  ),
  # FastChat llm_judge: turns are the answer strings.
  "mt_bench": _AnswerFormat(
    validators.read_mt_bench_questions,
    lambda q: q["turns"],
    lambda respond, answer: answer,
    validators.check_mt_bench_answers,
  ),
}


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

  `category_temperatures`: questions of a CATEGORY_TEMPERATURES category use its temperature.
  """
  if benchmark not in ANSWER_FORMATS:
    raise ValueError(f"unknown benchmark {benchmark!r}; expected one of {sorted(ANSWER_FORMATS)}")
  form = ANSWER_FORMATS[benchmark]
  validators.check_model_id(model_id)
  questions = form.read(question_file)
  temperatures = [
    CATEGORY_TEMPERATURES.get(q["category"]) if category_temperatures else None for q in questions
  ]
  answers = generation.answer_conversations(respond, [form.questions(q) for q in questions], temperatures)
  records = [
    {
      "question_id": question["question_id"],
      "answer_id": answer_id(model_id, question["question_id"], turns),
      "model_id": model_id,
      "choices": [{"index": 0, "turns": [form.turn(respond, answer) for answer in turns]}],
      "tstamp": time.time(),
    }
    for question, turns in zip(questions, answers)
  ]
  path = epath.Path(out_dir) / "model_answer" / f"{model_id}.jsonl"
  _write_jsonl(path, records)
  return Exported(benchmark, path, form.check(path, questions))


def export_alpaca_eval(
  respond: generation.Responder, instruction_file: epath.PathLike, out_file: epath.PathLike, generator: str
) -> Exported:
  """Answers AlpacaEval instructions; writes a JSON list of {"instruction", "output", "generator"}
  (plus "dataset" where the input has it), in input order."""
  validators.check_model_id(generator)
  items = validators.read_alpaca_eval_instructions(instruction_file)
  outputs = respond([item["instruction"] for item in items], 0, None)
  records = [
    {"instruction": item["instruction"], "output": output, "generator": generator}
    | ({"dataset": item["dataset"]} if "dataset" in item else {})
    for item, output in zip(items, outputs)
  ]
  path = epath.Path(out_file)
  _write_atomic(path, json.dumps(records, ensure_ascii=False, indent=2) + "\n")
  return Exported("alpaca_eval", path, validators.check_alpaca_eval_outputs(path, items))


def run_exports(respond: generation.Responder, cfg: ExportConfig, out_dir: epath.PathLike) -> list[Exported]:
  """Every benchmark whose question file `cfg` names: `<out_dir>/arena_hard/model_answer/<model_id>.jsonl`,
  `<out_dir>/mt_bench/model_answer/<model_id>.jsonl`, `<out_dir>/alpaca_eval/<model_id>/model_outputs.json`."""
  out_dir, done = epath.Path(out_dir), []
  for benchmark, question_file in (
    ("arena_hard", cfg.arena_hard_questions),
    ("mt_bench", cfg.mt_bench_questions),
  ):
    if question_file:
      per_category = cfg.category_temperatures
      out = out_dir / benchmark
      done.append(
        export_answers(
          benchmark, respond, question_file, out, cfg.model_id, category_temperatures=per_category
        )
      )
  if cfg.alpaca_eval_instructions:
    out_file = out_dir / "alpaca_eval" / cfg.model_id / "model_outputs.json"
    done.append(export_alpaca_eval(respond, cfg.alpaca_eval_instructions, out_file, cfg.model_id))
  return done
