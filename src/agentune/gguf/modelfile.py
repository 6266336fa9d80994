"""An Ollama Modelfile for the GGUF: FROM, a TEMPLATE in Go's text/template syntax, stops, parameters.

The TEMPLATE renders `.Messages` in the turns and template strings training used (the xtuner template
of the model's chat template, the BOS xtuner puts first): system, user and assistant messages as they
are, a `tool` message as a tool-result turn in the model's training convention. It does not use
`.Tools`, so Ollama reports no tool support and never applies its own tool-call parser (which reads a
JSON object after a tag, not lagent's `Action:` / `Action Input:` lines): a client sends lagent's ReAct
system prompt itself and reads the protocol text of a reply (lagent does both), or uses
`agentune serve --engine llama.cpp` for OpenAI `tool_calls`. tests/gguf/test_gguf.py renders this TEMPLATE
with Go's text/template and compares it with the Jinja chat template of the merged model.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from agentune.protocol.chat_template import xtuner_template
from agentune.protocol.react import ToolResultStyle
from agentune.protocol.templates import get_template

if TYPE_CHECKING:
    from agentune.core.artifacts import MergedRecord
    from agentune.gguf.config import OllamaConfig


def _go(text: str) -> str:
    """Literal text for a Go template: `{{` cannot appear in it unescaped."""
    return text.replace("{{", '{{ "{{" }}')


def go_template(template_name: str, tool_result: dict | None) -> str:
    """The Go text/template that renders Ollama's `.Messages` as the Jinja chat template does."""
    tpl = get_template(template_name)
    xt = xtuner_template(tpl)
    style = ToolResultStyle.load(tool_result)
    system_t = _go(xt["SYSTEM"]).replace("{system}", "{{ $system }}")
    instruction_t = _go(xt["INSTRUCTION"]).replace("{input}", "{{ $user }}")
    if style.role == "system":
        result = '{{ $system = printf "%s%s" ' + f"{_quote(style.prefix)}" + " .Content }}"
    else:
        result = '{{ $user = printf "%s%s%s" $user ' + f"{_quote(style.prefix)}" + " .Content }}"
    suffix = _go(xt.get("SUFFIX") or "") + _go(xt.get("SEP", ""))
    head = _go(tpl.bos or "")
    return (
        '{{- $system := "" }}{{ $user := "" }}{{ $lead := true }}' + head
        + "{{- range .Messages }}"
        + '{{- if eq .Role "system" }}{{ if and $lead $system }}{{ $system = printf "%s\\n%s" $system .Content }}'
        + "{{ else }}{{ $system = .Content }}{{ end }}"
        + '{{- else if eq .Role "user" }}{{ $lead = false }}{{ $user = printf "%s%s" $user .Content }}'
        + '{{- else if eq .Role "tool" }}{{ $lead = false }}' + result
        + '{{- else if eq .Role "assistant" }}{{ $lead = false }}'
        + "{{ if $system }}" + system_t + "{{ end }}" + instruction_t + "{{ .Content }}" + suffix
        + '{{ $system = "" }}{{ $user = "" }}'
        + "{{- end }}{{- end }}"
        + "{{ if $system }}" + system_t + "{{ end }}" + instruction_t
    )  # fmt: skip


def _quote(text: str) -> str:
    """A Go string literal."""
    return json.dumps(text)


def modelfile(gguf_name: str, record: MergedRecord, cfg: OllamaConfig) -> str:
    """The Modelfile text (FROM the GGUF beside it)."""
    tpl = get_template(record.template or "chatml")
    lines = [
        "# Ollama: ollama create agentune -f Modelfile && ollama run agentune",
        "# Written by `agentune gguf`; the TEMPLATE renders turns as training did (docs/gguf.md).",
        f"FROM ./{gguf_name}",
        f'TEMPLATE """{go_template(tpl.name, record.tool_result)}"""',
        *[f'PARAMETER stop "{s}"' for s in tpl.stop_tokens],
        f"PARAMETER temperature {cfg.temperature}",
        f"PARAMETER num_ctx {cfg.num_ctx}",
    ]
    return "\n".join(lines) + "\n"
