"""A Jinja chat template that renders prompts exactly as the project does, tools and tool results included.

Engines made for scale (vLLM, SGLang, TGI, LMDeploy, llama.cpp) prompt a model with the Jinja
`chat_template` of its `tokenizer_config.json`, passing a request's `tools` to it. `chat_template()`
writes one that renders, for OpenAI-style messages and tools, the same text the project renders
(`serve.render` + `inference.generation.encode_prompt`): lagent's ReAct system prompt with each
JSON-schema tool mapped into lagent's shape (`react.lagent_tool`, written out as Python's `str()`
writes it), the client's leading system messages after it, calls as `Thought:` / `Action:` /
`Action Input:` turns, tool results in the model's training convention, a plain-text answer (tools
offered) as a `Final Answer:` (`protocol.chat`), and the turns in xtuner's
template strings with the BOS xtuner puts first. tests/protocol/test_chat_template.py checks
`apply_chat_template(messages, tools=...)` against the project's own rendering, token for token.

Limits of the Jinja side (the server renders these right): a `$ref` in a tool's parameters is not
resolved; Python's `str()` escapes of control characters other than newline, tab and carriage return
are not reproduced; `arguments` given as a JSON string are written as they are (as a mapping, the way
vLLM passes them, they are written as `json.dumps` writes them).
"""

from __future__ import annotations

from typing import Any

from agentune.protocol import react
from agentune.protocol.templates import ChatTemplate

_PY = r"""
{%- macro pystr(s) -%}
{%- set q = '"' if ("'" in s and '"' not in s) else "'" -%}
{%- set e = s|replace('\\', '\\\\')|replace('\n', '\\n')|replace('\r', '\\r')|replace('\t', '\\t') -%}
{%- if q == "'" %}{% set e = e|replace("'", "\\'") %}{% endif -%}
{{ q }}{{ e }}{{ q }}
{%- endmacro -%}
{%- macro py(v) -%}
{%- if v is string -%}{{ pystr(v) }}
{%- elif v is mapping -%}{{ '{' }}{% for k, x in v.items() %}{{ py(k) }}: {{ py(x) }}{{ ', ' if not loop.last }}{% endfor %}{{ '}' }}
{%- elif v is sameas true -%}True
{%- elif v is sameas false -%}False
{%- elif v is none -%}None
{%- elif v is iterable -%}[{% for x in v %}{{ py(x) }}{{ ', ' if not loop.last }}{% endfor %}]
{%- else -%}{{ v }}
{%- endif -%}
{%- endmacro -%}
"""

_LAGENT = r"""
{%- macro ltype(s) -%}
{%- set t = s.type if s.type is defined else 'string' -%}
{%- if t is string -%}{% set t1 = t %}
{%- elif t is iterable -%}{% set ns_t = namespace(v=none) %}{% for x in t %}{% if ns_t.v is none and x != 'null' %}{% set ns_t.v = x %}{% endif %}{% endfor %}{% set t1 = ns_t.v if ns_t.v is not none else 'string' %}
{%- else -%}{% set t1 = none %}
{%- endif -%}
{%- if t1 is none -%}STRING
{%- else -%}{{ TYPES[t1] if t1 in TYPES else t1|upper }}
{%- endif -%}
{%- endmacro -%}
{%- macro lschema(s, named, name) -%}
{{ '{' }}{% if named %}'name': {{ pystr(name) }}, {% endif %}'type': {{ pystr(ltype(s)) }}
{%- if named or 'description' in s %}, 'description': {{ py(s.description if 'description' in s else '') }}{% endif %}
{%- if 'enum' in s %}, 'enum': {{ py(s.enum) }}{% endif %}
{%- if 'default' in s %}, 'default': {{ py(s.default) }}{% endif %}
{%- if s['items'] is defined and s['items'] is mapping %}, 'items': {{ lschema(s['items'], false, '') }}{% endif %}
{%- if s.properties is defined and s.properties is mapping %}, 'properties': {{ lparams(s.properties) }}{% endif %}
{%- if 'required' in s %}, 'required': {{ py(s.required) }}{% endif %}
{%- for k, v in s.items() %}{% if k not in OWN %}, {{ pystr(k) }}: {{ py(v) }}{% endif %}{% endfor %}{{ '}' }}
{%- endmacro -%}
{%- macro lparams(props) -%}
[{% for k, v in props.items() %}{{ lschema(v, true, k) }}{{ ', ' if not loop.last }}{% endfor %}]
{%- endmacro -%}
{%- macro ltool(fn) -%}
{{ '{' }}'name': {{ pystr(fn.name) }}, 'description': {{ py(fn.description or '') }}, 'parameters':
{%- set p = fn.parameters if fn.parameters is defined and fn.parameters is not none else {'type': 'object', 'properties': {}} -%}
{%- if p is mapping -%}
{{ ' ' }}{{ lparams(p.properties if p.properties is defined else {}) }}, 'required': {{ py(p.required if p.required is defined and p.required else []) }}
{%- else -%}
{{ ' ' }}{{ py(p) }}, 'required': {{ py(fn.required if fn.required is defined and fn.required else []) }}
{%- endif -%}
{%- if fn.return_data is defined and fn.return_data %}, 'return_data': {{ py(fn.return_data) }}{% endif -%}
, 'parameter_description': {{ py(fn.parameter_description if fn.parameter_description is defined else PARAM_DESC) }}{{ '}' }}
{%- endmacro -%}
{%- macro tool_prompt(tools) -%}
{%- set names = namespace(seen='|', text='') -%}
{%- for t in tools -%}{%- set fn = t.function if t.function is defined else t -%}
{%- set n = fn.name.split('.')[0] -%}
{%- if ('|' ~ n ~ '|') not in names.seen -%}{% set names.text = names.text ~ (', ' if names.seen != '|' else '') ~ pystr(n) %}{% set names.seen = names.seen ~ n ~ '|' %}{%- endif -%}
{%- endfor -%}
{{ HEAD }}[{% for t in tools %}{{ ltool(t.function if t.function is defined else t) }}{{ ', ' if not loop.last }}{% endfor %}]{{ MID }}[{{ names.text }}]{{ TAIL }}
{%- endmacro -%}
"""

_TURNS = r"""
{%- macro text(c) -%}{% if c is none %}{% elif c is string %}{{ c }}{% else %}{% for p in c %}{{ p.text if p.text is defined else '' }}{% endfor %}{% endif %}{%- endmacro -%}
{%- macro args(a) -%}{% if a is string %}{{ a }}{% else %}{{ a|tojson }}{% endif %}{%- endmacro -%}
{%- macro call(thought, c) -%}{{ THOUGHT }} {{ thought }}
{{ ACTION }} {{ c.function.name }}
{{ ACTION_INPUT }} {{ args(c.function.arguments) }}{%- endmacro -%}
{%- set st = namespace(system='', user='', started=false, last=none, answered='|', out=BOS, prev_call=false) -%}
{%- macro turn(role, content) -%}
{%- set st.prev_call = role == 'assistant' and FINAL not in content and ACTION_INPUT in content and ACTION in content -%}
{%- if role == 'system' %}{% set st.system = content %}{% set st.started = true %}
{%- elif role == 'user' %}{% set st.user = st.user ~ content %}{% set st.started = true %}
{%- elif st.started %}{% set st.out = st.out ~ (SYSTEM_T.replace('{system}', st.system) if st.system else '') ~ INSTRUCTION_T.replace('{input}', st.user) ~ content ~ SUFFIX ~ SEP %}{% set st.system = '' %}{% set st.user = '' %}
{%- endif -%}
{%- endmacro -%}
{%- macro flush_calls() -%}
{%- if st.last is not none -%}{%- set m = messages[st.last] -%}
{%- for c in m.tool_calls %}{% if ('|' ~ c.id ~ '|') not in st.answered %}{{ turn('assistant', call(text(m.content)|trim if loop.first else '', c)) }}{% endif %}{% endfor -%}
{%- set st.last = none %}{% set st.answered = '|' -%}
{%- endif -%}
{%- endmacro -%}
{%- set lead = namespace(n=0, text='', open=true) -%}
{%- for m in messages -%}{%- if lead.open and m.role in ('system', 'developer') -%}
{%- set lead.n = lead.n + 1 %}{% set t = text(m.content) %}{% if t %}{% set lead.text = lead.text ~ ('\n' if lead.text else '') ~ t %}{% endif -%}
{%- else %}{% set lead.open = false %}{% endif -%}{%- endfor -%}
{%- set sys = (tool_prompt(tools) ~ ('\n' ~ lead.text if lead.text else '')) if tools else lead.text -%}
{%- if sys %}{{ turn('system', sys) }}{% endif -%}
{%- for m in messages[lead.n:] -%}
{%- if m.role == 'tool' -%}
{%- if st.last is not none -%}{%- set a = messages[st.last] -%}
{%- for c in a.tool_calls %}{% if c.id == m.tool_call_id %}{{ turn('assistant', call(text(a.content)|trim if loop.first else '', c)) }}{% endif %}{% endfor -%}
{%- set st.answered = st.answered ~ m.tool_call_id ~ '|' -%}
{%- endif -%}
{{ turn(RESULT_ROLE, RESULT_PREFIX ~ text(m.content)) }}
{%- else -%}
{{ flush_calls() }}
{%- if m.role == 'assistant' and m.tool_calls is defined and m.tool_calls -%}{% set st.last = loop.index0 + lead.n %}
{%- else -%}
{%- set role = 'system' if m.role == 'developer' else m.role -%}
{%- set c = text(m.content) -%}
{%- if role == 'system' and c.startswith(RESPONSE) and st.prev_call -%}{{ turn(RESULT_ROLE, RESULT_PREFIX ~ c[RESPONSE|length:]|trim) }}
{%- elif role == 'assistant' and tools and THOUGHT not in c and ACTION not in c and FINAL not in c -%}{{ turn(role, THOUGHT ~ ' \n' ~ FINAL ~ ' ' ~ c) }}
{%- else %}{{ turn(role, c) }}{% endif -%}
{%- endif -%}
{%- endif -%}
{%- endfor -%}
{{ flush_calls() }}
{{- st.out -}}
{%- if add_generation_prompt %}{{ (SYSTEM_T.replace('{system}', st.system) if st.system else '') ~ INSTRUCTION_T.replace('{input}', st.user) }}{% endif -%}
"""


def xtuner_template(tpl: ChatTemplate) -> dict[str, Any]:
    """xtuner's PROMPT_TEMPLATE entry for an agentune template (the strings training used)."""
    from xtuner.utils import PROMPT_TEMPLATE

    return dict(PROMPT_TEMPLATE[tpl.xtuner])


def _lit(value: str) -> str:
    """A Python string as a Jinja string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n") + "'"


def chat_template(xtuner_template: dict[str, Any], bos: str | None, style: react.ToolResultStyle) -> str:
    """The Jinja chat template for a model trained with `xtuner_template` (xtuner's PROMPT_TEMPLATE
    entry), whose samples start with `bos` (None: none), and whose data sent tool results in `style`."""
    if not xtuner_template.get("SUFFIX_AS_EOS", False):
        raise ValueError(
            "chat_template: only templates whose SUFFIX is the EOS (qwen_chat, llama3_chat) are supported"
        )
    head, _, rest = react.CALL_PROTOCOL_EN.partition("{tool_description}")
    mid, _, tail = rest.partition("{action_names}")
    fill = dict(thought=react.THOUGHT, action=react.ACTION, action_input=react.ACTION_INPUT,
                response=react.RESPONSE, finish=react.FINAL)  # fmt: skip
    mid, tail = mid.format(**fill), tail.format(**fill)
    consts = {
        "TYPES": "{" + ", ".join(f"{_lit(k)}: {_lit(v)}" for k, v in react.LAGENT_TYPES.items()) + "}",
        "OWN": "[" + ", ".join(_lit(k) for k in react._OWN_KEYS) + "]",
        "PARAM_DESC": _lit(react.PARAMETER_DESCRIPTION),
        "HEAD": _lit(head),
        "MID": _lit(mid),
        "TAIL": _lit(tail),
        "THOUGHT": _lit(react.THOUGHT),
        "ACTION": _lit(react.ACTION),
        "ACTION_INPUT": _lit(react.ACTION_INPUT),
        "RESPONSE": _lit(react.RESPONSE),
        "FINAL": _lit(react.FINAL),
        "RESULT_ROLE": _lit(style.role),
        "RESULT_PREFIX": _lit(style.prefix),
        "SYSTEM_T": _lit(xtuner_template["SYSTEM"]),
        "INSTRUCTION_T": _lit(xtuner_template["INSTRUCTION"]),
        "SUFFIX": _lit(xtuner_template.get("SUFFIX") or ""),
        "SEP": _lit(xtuner_template.get("SEP", "")),
        "BOS": "bos_token" if bos else "''",
    }
    header = "".join(f"{{%- set {k} = {v} -%}}\n" for k, v in consts.items())
    return (header + _PY + _LAGENT + _TURNS).strip() + "\n"
