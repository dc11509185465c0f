"""Question readers and answer-file checks: each malformed case names its line or item and field."""

import copy
import json

import pytest

from eva_jax.evaluation import validators

ARENA_QUESTION = {"question_id": "q1", "category": "arena-hard-v0.1", "turns": [{"content": "Hi?"}]}
ARENA_ANSWER = {
  "question_id": "q1",
  "answer_id": "abc",
  "model_id": "m",
  "choices": [{"index": 0, "turns": [{"content": "Hello.", "token_len": 3}]}],
  "tstamp": 1.5,
}
MT_QUESTION = {"question_id": 81, "category": "writing", "turns": ["One?", "Two?"]}
MT_ANSWER = {
  "question_id": 81,
  "answer_id": "abc",
  "model_id": "m",
  "choices": [{"index": 0, "turns": ["A.", "B."]}],
  "tstamp": 2,
}


def _jsonl(path, *records):
  path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
  return path


def _edit(record, change):
  record = copy.deepcopy(record)
  change(record)
  return record


@pytest.mark.parametrize(
  "line, message",
  [
    ("{not json", "line 2: not valid JSON"),
    ("[1, 2]", "line 2: expected a JSON object, got list"),
    (_edit(ARENA_QUESTION, lambda q: q.pop("turns")), "line 2: missing field 'turns'"),
    (_edit(ARENA_QUESTION, lambda q: q.update(turns=[])), "line 2: field 'turns' is empty"),
    (
      _edit(ARENA_QUESTION, lambda q: q.update(question_id=True)),
      "field 'question_id' must be an integer or a string",
    ),
    (_edit(ARENA_QUESTION, lambda q: q.pop("category")), "line 2: missing field 'category'"),
    (_edit(ARENA_QUESTION, lambda q: q.update(turns=["Hi?"])), "line 2: 'turns\\[0\\]' must be an object"),
    (
      _edit(ARENA_QUESTION, lambda q: q.update(turns=[{"content": ["text", ["img"]]}])),
      "line 2: field 'turns\\[0\\].content' must be a string",
    ),
    (
      _edit(ARENA_QUESTION, lambda q: q.update(turns=[{"content": " "}])),
      "field 'turns\\[0\\].content' is empty",
    ),
    (ARENA_QUESTION, "line 2: question_id 'q1' repeats .*line 1"),
  ],
)
def test_arena_hard_question_errors(tmp_path, line, message):
  path = _jsonl(tmp_path / "question.jsonl", ARENA_QUESTION, line)
  with pytest.raises(validators.FormatError, match=message):
    validators.read_arena_hard_questions(path)


def test_arena_hard_questions_skip_blank_lines_and_keep_extra_fields(tmp_path):
  other = _edit(ARENA_QUESTION, lambda q: q.update(question_id="q2", cluster="x"))
  path = _jsonl(tmp_path / "question.jsonl", ARENA_QUESTION, "", other)
  assert validators.read_arena_hard_questions(path) == [ARENA_QUESTION, other]
  (tmp_path / "empty.jsonl").write_text("\n\n")
  with pytest.raises(validators.FormatError, match="no records"):
    validators.read_arena_hard_questions(tmp_path / "empty.jsonl")
  (tmp_path / "latin1.jsonl").write_bytes(b'{"question_id": "\xe9"}\n')
  with pytest.raises(validators.FormatError, match="not UTF-8"):
    validators.read_arena_hard_questions(tmp_path / "latin1.jsonl")


@pytest.mark.parametrize(
  "change, message",
  [
    (lambda q: q.update(turns=["Only one?"]), "line 1: field 'turns' must hold 2 questions .* got 1"),
    (lambda q: q.update(turns=["One?", 2]), "line 1: field 'turns\\[1\\]' must be a non-empty string"),
    (lambda q: q.update(turns="One?"), "line 1: field 'turns' must be a list"),
    (lambda q: q.update(category=None), "line 1: field 'category' must be a string, got null"),
  ],
)
def test_mt_bench_question_errors(tmp_path, change, message):
  path = _jsonl(tmp_path / "question.jsonl", _edit(MT_QUESTION, change))
  with pytest.raises(validators.FormatError, match=message):
    validators.read_mt_bench_questions(path)


def test_alpaca_eval_instruction_errors(tmp_path):
  path = tmp_path / "eval.json"
  path.write_text(json.dumps({"instruction": "x"}))
  with pytest.raises(validators.FormatError, match="expected a JSON list of objects, got dict"):
    validators.read_alpaca_eval_instructions(path)
  path.write_text(json.dumps([{"instruction": "x"}, {"prompt": "y"}]))
  with pytest.raises(validators.FormatError, match="item 1: missing field 'instruction'"):
    validators.read_alpaca_eval_instructions(path)
  path.write_text(json.dumps([{"instruction": "x", "dataset": 3}]))
  with pytest.raises(validators.FormatError, match="item 0: field 'dataset' must be a string"):
    validators.read_alpaca_eval_instructions(path)
  path.write_text('[{"instruction": "x"},]')
  with pytest.raises(validators.FormatError, match="not valid JSON .* line 1"):
    validators.read_alpaca_eval_instructions(path)


@pytest.mark.parametrize(
  "change, message",
  [
    (
      lambda a: a["choices"][0]["turns"][0].pop("token_len"),
      "missing field 'choices\\[0\\].turns\\[0\\].token_len'",
    ),
    (lambda a: a["choices"][0]["turns"][0].update(token_len=-1), "token_len' is negative"),
    (
      lambda a: a["choices"][0]["turns"][0].update(content=None),
      "'choices\\[0\\].turns\\[0\\].content' must be a string",
    ),
    (lambda a: a.update(model_id="other"), "model_id 'other' differs from the file's model name 'm'"),
    (lambda a: a.update(choices=[]), "field 'choices' is empty"),
    (lambda a: a["choices"][0].pop("index"), "missing field 'choices\\[0\\].index'"),
    (lambda a: a.pop("tstamp"), "missing field 'tstamp'"),
    (lambda a: a.update(question_id="q9"), "question_id 'q9' is not in the question file"),
    (
      lambda a: a["choices"][0]["turns"].append({"content": "", "token_len": 0}),
      "2 answer turn\\(s\\) for a question of 1",
    ),
  ],
)
def test_arena_hard_answer_errors(tmp_path, change, message):
  assert (
    validators.check_arena_hard_answers(_jsonl(tmp_path / "m.jsonl", ARENA_ANSWER), [ARENA_QUESTION]) == 1
  )
  path = _jsonl(tmp_path / "m.jsonl", _edit(ARENA_ANSWER, change))
  with pytest.raises(validators.FormatError, match=message):
    validators.check_arena_hard_answers(path, [ARENA_QUESTION])


def test_answer_files_answer_every_question_once_under_the_models_name(tmp_path):
  second = _edit(ARENA_QUESTION, lambda q: q.update(question_id="q2"))
  with pytest.raises(validators.FormatError, match="no answer to 1 question\\(s\\): \\['q2'\\]"):
    validators.check_arena_hard_answers(_jsonl(tmp_path / "m.jsonl", ARENA_ANSWER), [ARENA_QUESTION, second])
  with pytest.raises(validators.FormatError, match="line 2: question_id 'q1' repeats"):
    validators.check_arena_hard_answers(_jsonl(tmp_path / "m.jsonl", ARENA_ANSWER, ARENA_ANSWER))
  with pytest.raises(validators.FormatError, match="named <model>.jsonl"):
    validators.check_arena_hard_answers(_jsonl(tmp_path / "m.json", ARENA_ANSWER))


def test_mt_bench_answer_errors(tmp_path):
  assert validators.check_mt_bench_answers(_jsonl(tmp_path / "m.jsonl", MT_ANSWER), [MT_QUESTION]) == 1
  path = _jsonl(
    tmp_path / "m.jsonl",
    _edit(MT_ANSWER, lambda a: a["choices"][0]["turns"].__setitem__(1, {"content": "B."})),
  )
  with pytest.raises(validators.FormatError, match="'choices\\[0\\].turns\\[1\\]' must be a string"):
    validators.check_mt_bench_answers(path)
  path = _jsonl(tmp_path / "m.jsonl", _edit(MT_ANSWER, lambda a: a["choices"][0]["turns"].pop()))
  with pytest.raises(validators.FormatError, match="1 answer turn\\(s\\) for a question of 2"):
    validators.check_mt_bench_answers(path, [MT_QUESTION])


def test_alpaca_eval_output_errors(tmp_path):
  inputs = [{"instruction": "a", "dataset": "d"}, {"instruction": "b"}]
  good = [
    {"instruction": "a", "output": "x", "generator": "m", "dataset": "d"},
    {"instruction": "b", "output": "", "generator": "m"},
  ]
  path = tmp_path / "model_outputs.json"
  path.write_text(json.dumps(good))
  assert validators.check_alpaca_eval_outputs(path, inputs) == 2
  cases = [
    ([good[0], {**good[1], "generator": "n"}], "one generator, got \\['m', 'n'\\]"),
    (good[::-1], "item 0: field 'instruction' is 'b', the input has 'a'"),
    ([{**good[0], "dataset": "e"}, good[1]], "item 0: field 'dataset' is 'e', the input has 'd'"),
    (good[:1], "1 outputs for 2 instructions"),
    ([{"instruction": "a", "generator": "m"}, good[1]], "item 0: missing field 'output'"),
  ]
  for outputs, message in cases:
    path.write_text(json.dumps(outputs))
    with pytest.raises(validators.FormatError, match=message):
      validators.check_alpaca_eval_outputs(path, inputs)


def test_model_ids_name_files():
  assert validators.check_model_id("gemma-2-9b_eva.r3") == "gemma-2-9b_eva.r3"
  for bad in ("", "a/b", ".hidden", "a b", "x\n"):
    with pytest.raises(ValueError, match="model id"):
      validators.check_model_id(bad)


# arena-hard-auto v2.0: questions {uid, category, subcategory, prompt}; answers keyed by uid with
# the text at messages[-1]["content"]["answer"] and style-control metadata.
ARENA_V2_QUESTION = {
  "uid": "2edbb5f36f5b42be",
  "category": "hard_prompt",
  "subcategory": "coding",
  "prompt": "Hi?",
}
ARENA_V2_ANSWER = {
  "uid": "2edbb5f36f5b42be",
  "ans_id": "dgYC",
  "model": "m",
  "messages": [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": {"answer": "Hello."}}],
  "tstamp": 1.5,
  "metadata": {
    "token_len": 3,
    "header_count": {f"h{n}": 0 for n in range(1, 7)},
    "list_count": {"ordered": 0, "unordered": 0},
    "bold_count": {"**": 0, "__": 0},
  },
}


@pytest.mark.parametrize(
  "line, message",
  [
    (_edit(ARENA_V2_QUESTION, lambda q: q.pop("prompt")), "line 2: missing field 'prompt'"),
    (_edit(ARENA_V2_QUESTION, lambda q: q.update(prompt=" ")), "line 2: field 'prompt' is empty"),
    (_edit(ARENA_V2_QUESTION, lambda q: q.update(uid=7)), "line 2: field 'uid' must be a string"),
    (_edit(ARENA_V2_QUESTION, lambda q: q.update(cluster=1)), "line 2: field 'cluster' must be a string"),
    (ARENA_QUESTION, "line 2: mixes Arena-Hard layouts: the first record has 'uid' \\(v2\\)"),
    (ARENA_V2_QUESTION, "line 2: uid '2edbb5f36f5b42be' repeats .*line 1"),
  ],
)
def test_arena_hard_v2_question_errors(tmp_path, line, message):
  assert validators.read_arena_hard_questions(_jsonl(tmp_path / "q.jsonl", ARENA_V2_QUESTION)) == [
    ARENA_V2_QUESTION
  ]
  path = _jsonl(tmp_path / "q.jsonl", ARENA_V2_QUESTION, line)
  with pytest.raises(validators.FormatError, match=message):
    validators.read_arena_hard_questions(path)
  assert validators.arena_hard_format([ARENA_V2_QUESTION]) == "v2"
  assert validators.arena_hard_format([ARENA_QUESTION]) == "v0.1"


@pytest.mark.parametrize(
  "change, message",
  [
    (lambda a: a.pop("uid"), "missing field 'uid'"),
    (lambda a: a.update(model="x"), "model 'x' differs from the file's model name 'm'"),
    (lambda a: a["messages"][1].update(content="Hello."), "'messages\\[1\\].content' must be an object"),
    (lambda a: a["messages"][1]["content"].pop("answer"), "missing field 'messages\\[1\\].content.answer'"),
    (lambda a: a["messages"].reverse(), "'messages\\[0\\].role' is 'assistant'"),
    (lambda a: a["metadata"].pop("token_len"), "missing field 'metadata.token_len'"),
    (lambda a: a["metadata"]["bold_count"].pop("__"), "missing field 'metadata.bold_count.__'"),
    (lambda a: a.update(uid="zz"), "uid 'zz' is not in the question file"),
  ],
)
def test_arena_hard_v2_answer_errors(tmp_path, change, message):
  good = _jsonl(tmp_path / "m.jsonl", ARENA_V2_ANSWER)
  assert validators.check_arena_hard_answers(good, [ARENA_V2_QUESTION]) == 1
  assert validators.check_arena_hard_answers(good) == 1  # layout from the file itself
  second = _edit(ARENA_V2_QUESTION, lambda q: q.update(uid="u2"))
  with pytest.raises(validators.FormatError, match="no answer to 1 question\\(s\\): \\['u2'\\]"):
    validators.check_arena_hard_answers(good, [ARENA_V2_QUESTION, second])
  path = _jsonl(tmp_path / "m.jsonl", _edit(ARENA_V2_ANSWER, change))
  with pytest.raises(validators.FormatError, match=message):
    validators.check_arena_hard_answers(path, [ARENA_V2_QUESTION])
