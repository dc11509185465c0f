"""EvolInstruct-style meta-prompts (our own wording) and the parser of what the rewriting LLM returns.

`render(method, prompt, partner)` builds the request by plain concatenation of fixed pieces and
the user's prompt, never `str.format` or `string.Template` on user text, so braces, `{prompt}`,
`$x` or `%s` inside a prompt are just text and cannot break or hijack the template.

`parse_rewrite(output, parent)` pulls the new prompt out of a model's answer: it strips a leading
label ("Rewritten prompt:", "Sure! Here is the new prompt:", markdown bold or headings), a code
fence around the whole answer, trailing commentary ("Explanation: ..."), and quotes around the
whole answer. It returns (text, "") or (None, reason) with reason one of `PARSE_DROPS`.
"""

import re

from eva_jax.creator import text as text_lib

IN_DEPTH = ("add_constraints", "deepen", "concretize", "increase_reasoning", "expand")
IN_BREADTH = ("persona", "shift_in_domain", "shift_out_of_domain", "mix", "abstract")
METHODS = IN_DEPTH + IN_BREADTH
NEEDS_PARTNER = frozenset({"mix"})
PARSE_DROPS = ("empty", "refusal", "template_leak", "identical")

GIVEN = "#Given Prompt#:\n"
SECOND_GIVEN = "#Second Given Prompt#:\n"
ANSWER = "#New Prompt#:\n"

_IN_DEPTH_HEAD = (
  "You rewrite prompts that are used to train an AI assistant. Rewrite the given prompt into a "
  "harder version: one a strong assistant has to think about, and that a knowledgeable person "
  "could still answer. Keep everything the prompt relies on (code, tables, numbers, quoted text) "
  "and keep it self-contained and in the same language.\n"
)
_IN_BREADTH_HEAD = (
  "You write prompts that are used to train an AI assistant. Starting from the given prompt, write "
  "a new prompt of the same kind and about the same difficulty that is clearly different from it. "
  "The new prompt must be self-contained, answerable and in the same language.\n"
)
_RULES = (
  "\nDo not answer the prompt, do not explain what you changed, and do not write the words "
  "'given prompt' or 'new prompt'. Reply with the new prompt only.\n\n"
)
INSTRUCTIONS = {
  "add_constraints": "How: add exactly one new constraint or requirement that the answer must meet, "
  "in at most 20 extra words.",
  "deepen": "How: where the prompt asks about a particular issue, widen and deepen the question so "
  "that a good answer needs more insight.",
  "concretize": "How: replace general concepts with more specific, concrete ones (names, "
  "quantities, settings).",
  "increase_reasoning": "How: if the prompt can be answered in one or two obvious steps, change it "
  "so that answering it explicitly takes several steps of reasoning.",
  "expand": "How: expand the prompt with relevant context and more detailed requirements, making it "
  "longer and more complete.",
  "persona": "How: ask for the same kind of thing as a particular, different person would (choose a "
  "profession, age or background), and let their situation shape the request.",
  "shift_in_domain": "How: stay in the prompt's domain but move to a different, less common topic within it.",
  "shift_out_of_domain": "How: carry the prompt's kind of task over to a completely different domain.",
  "mix": "How: combine the two given prompts into one new prompt that needs what both of them ask for.",
  "abstract": "How: turn the specific case into a more general question about the principle or "
  "method behind it.",
}


def render(method: str, prompt: str, partner: str | None = None) -> str:
  """The meta-prompt asking for a `method` rewrite of `prompt` (`mix` also needs `partner`)."""
  if method not in INSTRUCTIONS:
    raise ValueError(f"unknown rewriting method {method!r}; expected one of {list(METHODS)}")
  if method in NEEDS_PARTNER and partner is None:
    raise ValueError(f"method {method!r} needs a second prompt")
  head = _IN_DEPTH_HEAD if method in IN_DEPTH else _IN_BREADTH_HEAD
  parts = [head, INSTRUCTIONS[method], _RULES, GIVEN, prompt, "\n\n"]
  if method in NEEDS_PARTNER:
    parts += [SECOND_GIVEN, partner, "\n\n"]
  parts.append(ANSWER)
  return "".join(parts)


# A first line that only labels what follows: "Rewritten prompt:", "**New Prompt:**",
# "Sure! Here is a harder version:", "## Prompt 2:".
_LABEL = re.compile(
  r"""\A[\s#*_>]*                                      # markdown: headings, bold, block quotes
  (?:(?:sure|okay|ok|certainly)\b[!.,]?\s*)?           # "Sure! "
  (?:
    here(?:'s|’s|\ is)\b[^:\n]{0,60}\b(?:prompt|version|rewrite)\b[^:\n]{0,20}  # "Here is the new prompt"
  | (?:(?:the|a|my|your)\s+)?
    (?:(?:new|rewritten|revised|evolved|created|improved|harder|final|updated|generated)\s+)?
    (?:version\s+of\s+the\s+)?prompt(?:\s*\d+)?       # "Rewritten prompt", "Prompt 2"
  )
  [\s*_#]*:[\s*_#]*""",
  re.IGNORECASE | re.VERBOSE,
)
_FENCE = re.compile(r"\A```[\w+.-]*[ \t]*\n(.*?)\n?```\Z", re.DOTALL)
_TRAILER = re.compile(
  r"\n\s*[*_#]*\s*(?:explanation|note|notes|changes|rationale|reasoning)\b[^:\n]{0,40}:",
  re.IGNORECASE,
)
_QUOTES = (('"', '"'), ("'", "'"), ("“", "”"), ("‘", "’"), ("«", "»"), ("「", "」"), ("`", "`"))
_REFUSAL = re.compile(
  r"\A(?:i['’]?m sorry|i am sorry|sorry\b|i apologi[sz]e|i can(?:['’]?t|not)\b|"
  r"i['’]?m (?:not able|unable)|i am (?:not able|unable)|i won['’]?t\b|as an ai\b)",
  re.IGNORECASE,
)
_LEAKS = ("#Given Prompt#", "#Second Given Prompt#", "#New Prompt#")


def _unquote(text: str) -> str:
  for left, right in _QUOTES:
    inner = text[len(left) : -len(right)]
    if len(text) >= 2 and text.startswith(left) and text.endswith(right) and left not in inner:
      return inner.strip()
  return text


def parse_rewrite(output: str, parent: str) -> tuple[str | None, str]:
  """The new prompt in `output` and "", or None and the reason it is unusable (see module docstring)."""
  text = output.strip()
  for _ in range(2):  # "Sure! Here it is:\n**New prompt:** ..." carries two labels
    text = _LABEL.sub("", text, count=1).strip()
    fenced = _FENCE.match(text)
    if fenced:
      text = fenced.group(1).strip()
  trailer = _TRAILER.search(text)
  if trailer:
    text = text[: trailer.start()].strip()
  text = _unquote(text)
  if not text:
    return None, "empty"
  if _REFUSAL.match(text):
    return None, "refusal"
  if any(leak in text for leak in _LEAKS):
    return None, "template_leak"
  if text_lib.normalise_text(text) == text_lib.normalise_text(parent):
    return None, "identical"
  return text, ""
