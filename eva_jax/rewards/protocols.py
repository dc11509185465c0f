"""Wire formats of remote reward servers: eva's own, vLLM's pooling API, OpenRLHF's remote reward model.

`request_body(...)` builds the JSON a batch of (prompt, response) pairs is posted as and
`read_rewards(...)` reads one float per pair from the answer (ValueError describing what is wrong).

eva (`server.py`, `remote.py`): {"prompts": [...], "responses": [...]} -> {"rewards": [x | null]}.

vllm (vLLM's pooling runner, `vllm serve <reward model>`; request and answer shapes as read in
vLLM 0.34's request models, `vllm/frontend/entrypoints/pooling/{classify,pooling}/protocol.py`, where
the pooling entrypoints moved from `vllm/entrypoints/pooling/`): one conversation per request, since
the chat form takes one `messages` list; the server applies the reward model's own chat template, so
nothing here guesses it. Pairs go out concurrently (`max_concurrency`) and vLLM batches them.

    POST .../classify   {"model": M, "messages": [{"role": "user", ...}, {"role": "assistant", ...}],
                         "use_activation": false}
    200 {"data": [{"index": 0, "label": "LABEL_0", "probs": [3.41], "num_classes": 1}], ...}

`use_activation: false` asks for the raw logit (vLLM applies a sigmoid to one-label heads by
default; the field exists since vLLM 0.11, and 0.34 no longer defines the older `activation`).
Point the URL at `/classify` for a sequence-classification reward model (Skywork-Reward, ...). At
`/pooling` the answer is {"data": [{"index": 0, "data": ...}]}: a number, [x] (a one-label sequence
head), or a token head's rows [[x], ...] ([n_tokens, num_labels]), of which the last token's is the
reward. More than one value per token or per sequence (a 2-class head, such as a process reward
model's) is refused, as a `/classify` answer with num_classes != 1 is.

openrlhf (OpenRLHF's `openrlhf.cli.serve_rm`, v0.8.3+; its trainer's remote-RM client, read in
v0.11.0, is `SingleTurnAgentExecutor` in `openrlhf/utils/agent.py`, earlier
`openrlhf/utils/remote_rm_utils.py`): whole texts with the chat template applied, as its trainer
decodes them, `decode(prompt_ids + generated_ids, skip_special_tokens=False)`: special tokens kept,
and each query ends at the stop token the policy generated (its end-of-turn or EOS), with no newline
after it. OpenRLHF's reward models are trained on `(prompt + chosen).rstrip("\n")` plus EOS
(`openrlhf/datasets/reward_dataset.py`) and read the last token, so that ending matters.

    POST .../get_reward {"query": [prompt+response texts], "prompts": [prompt texts], "labels": [null]}
    200 {"rewards": [...], "scores": [...], "extra_logs": {...}}     (before v0.8.3: {"rewards"} only)

The texts come from `query_template`: a preset ("gemma", "llama3", "chatml"; the bare turns, no
system turn) or a string holding "{prompt}" and, after it, "{response}". `split_query` inverts it for
our own server: it strips any stop token of the preset's tokenizer that ends the response, and
splits a query whose prompt OpenRLHF cut from the left (it truncates the prompt's token ids but sends
the whole prompt text) at the template's turn marker.
"""

from collections.abc import Sequence
import dataclasses
import math
import urllib.parse

PROTOCOLS = ("eva", "vllm", "openrlhf")

# Each ends at the end-of-turn token, where the policy's generation stops: no newline after it.
QUERY_TEMPLATES = {
  "gemma": "<bos><start_of_turn>user\n{prompt}<end_of_turn>\n<start_of_turn>model\n{response}<end_of_turn>",
  "llama3": (
    "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n{prompt}<|eot_id|>"
    "<|start_header_id|>assistant<|end_header_id|>\n\n{response}<|eot_id|>"
  ),
  "chatml": "<|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n{response}<|im_end|>",
}
# The stop tokens each preset's tokenizer defines: a policy may end its answer with any of them.
STOP_TOKENS = {
  "gemma": ("<end_of_turn>", "<eos>"),
  "llama3": ("<|eot_id|>", "<|eom_id|>", "<|end_of_text|>"),
  "chatml": ("<|im_end|>", "<|endoftext|>"),
}
REPLACEMENT_CHAR = "\ufffd"  # what decoding token ids cut inside a character gives


@dataclasses.dataclass(frozen=True)
class QueryTemplate:
  """`before` + prompt + `between` + response + `after`; `stops` may end a generated response."""

  before: str
  between: str
  after: str
  stops: tuple[str, ...] = ()

  def prompt_text(self, prompt: str) -> str:
    return f"{self.before}{prompt}{self.between}"

  def query(self, prompt: str, response: str) -> str:
    return f"{self.before}{prompt}{self.between}{response}{self.after}"

  def strip_stops(self, response: str) -> str:
    """`response` without the stop tokens that end it (and a newline after one, as older clients sent)."""
    while True:
      body = response.removesuffix("\n")
      stop = next((s for s in self.stops if body.endswith(s)), None)
      if stop is None:
        return response
      response = body[: -len(stop)]


def query_template(spec: str) -> QueryTemplate:
  """The template a preset name or a "{prompt}...{response}" string names; ValueError otherwise."""
  text = QUERY_TEMPLATES.get(spec, spec)
  if (
    text.count("{prompt}") != 1
    or text.count("{response}") != 1
    or text.find("{prompt}") > text.find("{response}")
  ):
    raise ValueError(
      f"{spec!r} is neither a preset {sorted(QUERY_TEMPLATES)} nor a template with one {{prompt}} "
      "and, after it, one {response}"
    )
  before, rest = text.split("{prompt}")
  between, after = rest.split("{response}")
  stops = STOP_TOKENS.get(spec, (after.rstrip("\n"),) if after.strip() else ())
  return QueryTemplate(before, between, after, stops)


def _split_left_cut(template: QueryTemplate, query: str, prompt_text: str) -> tuple[str, str]:
  """(prompt, response) of a query whose prompt lost its first tokens; ValueError if it is not one.

  The response starts after the last turn marker (`between`) whose text before it is an end of
  `prompt_text`: a marker inside the prompt or the response is passed over. What is left of the
  template's opening (`<start_of_turn>user\n` once `<bos>` is gone) is not part of the prompt.
  """
  marker, end = template.between, len(query)
  while (cut := query.rfind(marker, 0, end)) >= 0:
    head = query[: cut + len(marker)].lstrip(REPLACEMENT_CHAR)
    if prompt_text.endswith(head):
      prompt = head[: -len(marker)]
      for i in range(len(template.before)):
        rest = template.before[i:]
        if (i == 0 or rest.startswith("<")) and prompt.startswith(rest):
          prompt = prompt[len(rest) :]
          break
      return prompt, query[cut + len(marker) :]
    end = cut + len(marker) - 1
  raise ValueError(
    "a query neither starts with its prompt nor with the end of it (a prompt cut from the left) "
    f"followed by {marker!r}"
  )


def split_query(template: QueryTemplate, query: str, prompt_text: str | None) -> tuple[str, str]:
  """(prompt, response) of an OpenRLHF `query`, given its templated prompt when the client sent one.

  Without `prompt_text` (clients before OpenRLHF 0.6) the prompt ends at the first `between`. A
  query that does not start with `prompt_text` is one whose prompt OpenRLHF cut from the left: it
  is split at the turn marker, and the prompt is what is left of it (what the policy saw). The
  response loses the stop tokens that end it; one cut at the length limit has none, which is fine.
  """
  if prompt_text is not None and not query.startswith(prompt_text):
    prompt, response = _split_left_cut(template, query, prompt_text)
    return prompt, template.strip_stops(response)
  if prompt_text is not None:
    response = query[len(prompt_text) :]
  else:
    cut = query.find(template.between, len(template.before))
    if cut < 0:
      raise ValueError(f"a query has no {template.between!r} between prompt and response")
    prompt_text, response = query[: cut + len(template.between)], query[cut + len(template.between) :]
  if not (prompt_text.startswith(template.before) and prompt_text.endswith(template.between)):
    raise ValueError(f"a prompt is not in the template's form: {prompt_text[:80]!r}")
  prompt = prompt_text[len(template.before) : len(prompt_text) - len(template.between)]
  return prompt, template.strip_stops(response)


def pairs_per_request(protocol: str, batch_size: int) -> int:
  return 1 if protocol == "vllm" else batch_size


def request_body(
  protocol: str, prompts: Sequence[str], responses: Sequence[str], *, model: str = "", template: QueryTemplate
) -> dict:
  if protocol == "eva":
    return {"prompts": list(prompts), "responses": list(responses)}
  if protocol == "openrlhf":
    return {
      "query": [template.query(p, r) for p, r in zip(prompts, responses, strict=True)],
      "prompts": [template.prompt_text(p) for p in prompts],
      "labels": [None] * len(prompts),
    }
  if protocol == "vllm":
    if len(prompts) != 1:
      raise ValueError("the vllm protocol sends one conversation per request")
    body = {
      "messages": [{"role": "user", "content": prompts[0]}, {"role": "assistant", "content": responses[0]}],
      "use_activation": False,
    }
    return {"model": model, **body} if model else body
  raise ValueError(f"unknown reward protocol {protocol!r}; expected one of {PROTOCOLS}")


def _number(value, where: str) -> float:
  if value is None:
    return math.nan
  if isinstance(value, bool) or not isinstance(value, int | float):
    raise ValueError(f"{where} is {value!r}, not a number or null")
  try:
    return float(value)
  except OverflowError:  # JSON integers have no size limit; a float has one
    raise ValueError(
      f"{where} is an integer of {len(str(abs(value)))} digits, too large for a float"
    ) from None


def _vllm_value(item) -> float:
  """The scalar of one vLLM `data` item: classify's probs[0], or pooling's (last token's) value."""
  if not isinstance(item, dict):
    raise ValueError(f"data[0] is {item!r}, not an object")
  if "probs" in item:
    probs = item["probs"]
    if not isinstance(probs, list) or len(probs) != 1:
      raise ValueError(f"probs is {str(probs)[:80]}; a reward model has one label (num_classes 1)")
    return _number(probs[0], "probs[0]")
  if "data" not in item:
    keys = sorted(item)
    raise ValueError(f"data[0] has neither 'probs' (/classify) nor 'data' (/pooling): keys {keys}")
  value = item["data"]
  if isinstance(value, list) and value and isinstance(value[-1], list):  # [n_tokens, num_labels]
    value = value[-1]  # the last token scores the whole sequence
    where = "values per token"
  else:
    where = "values"
  if isinstance(value, list):
    if len(value) != 1:
      raise ValueError(
        f"/pooling answered {len(value)} {where}; a reward model has one label (num_classes 1): "
        f"{str(item['data'])[:80]}"
      )
    value = value[0]
  return _number(value, "the pooled value")


def read_rewards(protocol: str, body, expected: int) -> list[float]:
  """One float per pair from a 2xx answer's JSON `body` (null / NaN -> NaN); ValueError if unusable."""
  if protocol == "vllm":
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list) or len(data) != expected:
      raise ValueError(f'answered JSON without a "data" list of {expected}: {str(body)[:200]}')
    return [_vllm_value(item) for item in data]
  if not isinstance(body, dict) or not isinstance(body.get("rewards"), list):
    raise ValueError(f'answered JSON without a "rewards" list: {str(body)[:200]}')
  rewards = body["rewards"]
  if len(rewards) != expected:
    raise ValueError(f"answered {len(rewards)} rewards for {expected} pairs")
  return [_number(v, f"reward {i}") for i, v in enumerate(rewards)]


def check_url(protocol: str, url: str) -> str:
  """'' if `url` suits `protocol`, else what is wrong (a vLLM URL must end in /classify or /pooling)."""
  path = urllib.parse.urlsplit(url).path.rstrip("/")
  if protocol == "vllm" and not path.endswith(("/classify", "/pooling")):
    return f"{url!r}: a vLLM reward server answers at .../classify (or .../pooling); e.g. http://host:8000/classify"
  return ""
