"""xtuner's supervised fine-tuning model with the language-model head applied where the loss is.

xtuner's `SupervisedFinetune` calls the causal LM with `labels`, so the head projects every position of
the batch onto the vocabulary and the loss then ignores every position whose label is -100. In this
project's data that is most of them: the tool prompt and the user and tool-result turns are context, and
only the assistant turns carry a loss (about a quarter of the tokens of a sample conversation). For a
135M model with a 49,152-token vocabulary the head is a fifth of the forward pass; for Llama-3's 128,256
tokens the full logits of one 8k-token sequence take 4 GiB in fp32.

`LabelPositionsFinetune` runs the decoder, keeps the hidden states of the positions that predict a
label, and applies the head and the cross-entropy to those rows only. The loss is the same mean over the
same tokens as transformers' causal-LM loss (the test compares the two and their gradients), so training
is unchanged but for the time and memory the discarded logits cost. xtuner's own path is kept where
that would not hold: sequence parallelism (the loss is split across ranks) and models whose logits are
more than `lm_head(hidden)` (Gemma-2's soft-capping, Cohere's logit scale, a mixture of experts' router
loss, no `lm_head`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from xtuner.model import SupervisedFinetune
from xtuner.parallel.sequence import get_sequence_parallel_world_size

IGNORE_INDEX = -100


def label_positions_loss(causal_lm: torch.nn.Module, data: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean next-token cross-entropy over the positions with a label, computing logits there only.

    `causal_lm` is a transformers `*ForCausalLM` (its `.model` the decoder, `.lm_head` the head);
    `data` holds `input_ids`, `labels` and whatever else the decoder takes (attention_mask, position_ids).
    """
    labels = data["labels"]
    inputs = {k: v for k, v in data.items() if k != "labels"}
    hidden = causal_lm.model(**inputs, use_cache=False)[0]
    targets = labels[:, 1:]
    keep = targets != IGNORE_INDEX
    logits = causal_lm.lm_head(hidden[:, :-1][keep]).float()
    return F.cross_entropy(logits, targets[keep])


def logits_are_the_head(causal_lm: torch.nn.Module) -> bool:
    """Whether the model's logits are `lm_head(hidden)` and its loss the cross-entropy alone."""
    cfg = causal_lm.config
    return (
        hasattr(causal_lm, "lm_head")
        and getattr(cfg, "final_logit_softcapping", None) is None
        and getattr(cfg, "logit_scale", None) is None
        and not getattr(cfg, "output_router_logits", False)
    )


class LabelPositionsFinetune(SupervisedFinetune):
    """`SupervisedFinetune` whose loss computes logits only at positions that have a label."""

    def compute_loss(self, data, data_samples=None):  # noqa: ANN001 - xtuner's signature
        causal_lm = self.llm.get_base_model() if self.use_lora else self.llm
        if get_sequence_parallel_world_size() > 1 or not logits_are_the_head(causal_lm):
            return super().compute_loss(data, data_samples)
        return {"loss": label_positions_loss(causal_lm, data)}
