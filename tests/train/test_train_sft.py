"""The training loss computed at labelled positions only equals transformers' causal-LM loss."""

from __future__ import annotations

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM

from agentune.train.sft import IGNORE_INDEX, label_positions_loss, logits_are_the_head


def _batch(vocab: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    input_ids = torch.randint(0, vocab, (2, 40), generator=g)
    labels = input_ids.clone()
    labels[:, :25] = IGNORE_INDEX  # the prompt: no loss
    labels[0, 31:34] = IGNORE_INDEX  # a tool result inside the reply
    labels[1, 36:] = IGNORE_INDEX  # padding
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, 36:] = 0
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def test_label_positions_loss_equals_causal_lm_loss_and_gradients(tiny_base):
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_base, torch_dtype=torch.float32)
    model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, task_type="CAUSAL_LM"))
    for name, p in model.named_parameters():  # LoRA's B starts at zero: give the test a real gradient
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.02)
    data = _batch(model.config.vocab_size)
    lora = [p for p in model.parameters() if p.requires_grad]

    reference = model(**data).loss
    ref_grads = torch.autograd.grad(reference, lora)
    ours = label_positions_loss(model.get_base_model(), data)
    our_grads = torch.autograd.grad(ours, lora)

    assert torch.allclose(ours, reference, atol=1e-6), (ours.item(), reference.item())
    for a, b in zip(our_grads, ref_grads, strict=True):
        assert torch.allclose(a, b, atol=1e-6, rtol=1e-4)
    # it is a different loss once one labelled position is dropped: the comparison can fail
    data["labels"][0, 30] = IGNORE_INDEX
    assert not torch.allclose(label_positions_loss(model.get_base_model(), data), reference, atol=1e-6)


def test_models_whose_logits_are_more_than_the_head_keep_xtuners_loss(tiny_base):
    model = AutoModelForCausalLM.from_pretrained(tiny_base, torch_dtype=torch.float32)
    assert logits_are_the_head(model)
    for key, value in (
        ("final_logit_softcapping", 30.0),
        ("logit_scale", 0.0625),
        ("output_router_logits", True),
    ):
        setattr(model.config, key, value)
        assert not logits_are_the_head(model), key
        delattr(model.config, key)
