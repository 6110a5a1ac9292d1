"""The paper's official approach to per-sample perplexity, rebuilt from its description: the
transformers Trainer's eval dataloader (dataset order, each batch padded to its longest sample by the
collator), a full forward pass that returns float32 logits for every position and the whole vocabulary,
and a per-sample Python loop calling .item(). It is the baseline the workflow's extractor is measured
against; the workflow itself never uses it."""

import math
import tempfile

import torch
import torch.nn.functional as F
from datasets import Dataset
from transformers import DataCollatorForSeq2Seq, Trainer, TrainingArguments


@torch.no_grad()
def reference_perplexities(model, tokenizer, examples: list[dict], batch_size: int) -> list[float]:
    dataset = Dataset.from_dict(
        {"input_ids": [e["input_ids"] for e in examples], "labels": [e["labels"] for e in examples]}
    )
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(output_dir=out, per_device_eval_batch_size=batch_size, report_to="none",
                                 dataloader_num_workers=0, use_cpu=not torch.cuda.is_available())
        collator = DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=-100, padding=True)
        trainer = Trainer(model=model, args=args, data_collator=collator, processing_class=tokenizer)
        loader = trainer.get_eval_dataloader(dataset)
        model.eval()
        perplexities = []
        for batch in loader:
            batch = trainer._prepare_inputs(batch)
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float()
            shift_logits, shift_labels = logits[:, :-1], batch["labels"][:, 1:]
            for i in range(len(shift_logits)):
                loss = F.cross_entropy(shift_logits[i], shift_labels[i], ignore_index=-100)
                perplexities.append(math.exp(loss.item()))
    return perplexities
