"""Answer files for the public benchmarks the paper reports, from question files the user provides.

    Arena-Hard   question.jsonl              -> <dir>/model_answer/<model_id>.jsonl
    MT-Bench     question.jsonl (two turns)  -> <dir>/model_answer/<model_id>.jsonl  (FastChat format)
    AlpacaEval   JSON list of instructions   -> JSON list of {"instruction", "output", "generator"}

Nothing is downloaded: the judges (arena-hard-auto, FastChat llm_judge, alpaca_eval) run elsewhere on
these files. Every file is checked by `validators` before this module returns its path, and written
atomically, so a crash never leaves a half-written answer file for a judge to pick up.
"""

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


def _temperatures(questions: Sequence[dict], per_category: bool) -> list[float | None]:
  return [CATEGORY_TEMPERATURES.get(q["category"]) if per_category else None for q in questions]


def _fastchat_record(model_id: str, question: dict, turns: list) -> dict:
  contents = [t if isinstance(t, str) else t["content"] for t in turns]
  return {
    "question_id": question["question_id"],
    "answer_id": answer_id(model_id, question["question_id"], contents),
    "model_id": model_id,
    "choices": [{"index": 0, "turns": turns}],
    "tstamp": time.time(),
  }


def export_arena_hard(
  respond: generation.Responder,
  question_file: epath.PathLike,
  out_dir: epath.PathLike,
  model_id: str,
  *,
  category_temperatures: bool = False,
) -> Exported:
  """Answers Arena-Hard questions; writes `<out_dir>/model_answer/<model_id>.jsonl`.

  Each turn holds its `content` and `token_len` (counted with the solver's tokenizer; arena-hard-auto
  counts gpt-3.5-turbo tokens, which only changes the average length its leaderboard prints).
  """
  validators.check_model_id(model_id)
  questions = validators.read_arena_hard_questions(question_file)
  conversations = [[turn["content"] for turn in q["turns"]] for q in questions]
  answers = generation.answer_conversations(
    respond, conversations, _temperatures(questions, category_temperatures)
  )
  records = [
    _fastchat_record(model_id, q, [{"content": a, "token_len": respond.count_tokens(a)} for a in turns])
    for q, turns in zip(questions, answers)
  ]
  path = epath.Path(out_dir) / "model_answer" / f"{model_id}.jsonl"
  _write_jsonl(path, records)
  return Exported("arena_hard", path, validators.check_arena_hard_answers(path, questions))


def export_mt_bench(
  respond: generation.Responder,
  question_file: epath.PathLike,
  out_dir: epath.PathLike,
  model_id: str,
  *,
  category_temperatures: bool = False,
) -> Exported:
  """Answers MT-Bench's two turns (the second with the first question and answer in context); writes
  `<out_dir>/model_answer/<model_id>.jsonl` in FastChat's answer format."""
  validators.check_model_id(model_id)
  questions = validators.read_mt_bench_questions(question_file)
  answers = generation.answer_conversations(
    respond, [q["turns"] for q in questions], _temperatures(questions, category_temperatures)
  )
  records = [_fastchat_record(model_id, q, turns) for q, turns in zip(questions, answers)]
  path = epath.Path(out_dir) / "model_answer" / f"{model_id}.jsonl"
  _write_jsonl(path, records)
  return Exported("mt_bench", path, validators.check_mt_bench_answers(path, questions))


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
  """Every benchmark whose question file `cfg` names, under `out_dir`:

  arena_hard/model_answer/<model_id>.jsonl
  mt_bench/model_answer/<model_id>.jsonl
  alpaca_eval/<model_id>/model_outputs.json
  """
  out_dir, done = epath.Path(out_dir), []
  per_category = cfg.category_temperatures
  if cfg.arena_hard_questions:
    done.append(
      export_arena_hard(
        respond,
        cfg.arena_hard_questions,
        out_dir / "arena_hard",
        cfg.model_id,
        category_temperatures=per_category,
      )
    )
  if cfg.mt_bench_questions:
    done.append(
      export_mt_bench(
        respond,
        cfg.mt_bench_questions,
        out_dir / "mt_bench",
        cfg.model_id,
        category_temperatures=per_category,
      )
    )
  if cfg.alpaca_eval_instructions:
    out_file = out_dir / "alpaca_eval" / cfg.model_id / "model_outputs.json"
    done.append(export_alpaca_eval(respond, cfg.alpaca_eval_instructions, out_file, cfg.model_id))
  return done
