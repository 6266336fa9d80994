"""The chat templates agentune supports, tied to xtuner's template of the same format.

Training (xtuner's `PROMPT_TEMPLATE`), export (generation config stop tokens) and evaluation (prompt
rendering and stopping) all look a template up here by the name recorded in the base model's
provenance (`models/base/agentune_base.json`), so the three can never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass

CHATML_JINJA = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

LLAMA3_JINJA = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim"
    " + '<|eot_id|>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"
)


@dataclass(frozen=True)
class ChatTemplate:
    name: str  # agentune's name: "chatml" or "llama3"
    xtuner: str  # key in xtuner.utils.PROMPT_TEMPLATE
    jinja: str  # tokenizer chat_template for models built here
    special_tokens: tuple[str, ...]  # tokens a tokenizer for this template must have
    bos: str | None
    eos: str  # end of an assistant turn: what training appends and generation stops on
    pad: str
    stop_tokens: tuple[str, ...]  # every token that ends generation


TEMPLATES: dict[str, ChatTemplate] = {
    "chatml": ChatTemplate(
        name="chatml",
        xtuner="qwen_chat",
        jinja=CHATML_JINJA,
        special_tokens=("<|endoftext|>", "<|im_start|>", "<|im_end|>"),
        # ChatML has no BOS of its own, but xtuner prepends `tokenizer.bos_token_id` to every sample
        # (and fails when it is None). The document separator is the natural choice; SmolLM2's GGUF
        # tokenizer says `<|im_start|>`, which would double the first turn's header.
        bos="<|endoftext|>",
        eos="<|im_end|>",
        pad="<|endoftext|>",
        stop_tokens=("<|im_end|>", "<|endoftext|>"),
    ),
    "llama3": ChatTemplate(
        name="llama3",
        xtuner="llama3_chat",
        jinja=LLAMA3_JINJA,
        special_tokens=(
            "<|begin_of_text|>",
            "<|end_of_text|>",
            "<|start_header_id|>",
            "<|end_header_id|>",
            "<|eot_id|>",
        ),
        bos="<|begin_of_text|>",
        eos="<|eot_id|>",
        pad="<|end_of_text|>",
        stop_tokens=("<|eot_id|>", "<|end_of_text|>"),
    ),
}


def get_template(name: str) -> ChatTemplate:
    """Look a template up by agentune name, with the allowed names in the error."""
    try:
        return TEMPLATES[name]
    except KeyError:
        raise ValueError(f"unknown chat template {name!r}; allowed: {', '.join(TEMPLATES)}") from None
