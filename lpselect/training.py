"""The one trainer for proxies and targets: the transformers Trainer on response-masked examples.

Resumable: Trainer checkpoints and per-epoch model folders live in a state folder that is not a
Snakemake output (Snakemake deletes the outputs of a failed job); a rerun resumes from the last
checkpoint, and the caller removes the state folder once the outputs are in place.
"""

import json
import logging
import shutil
from pathlib import Path

from datasets import Dataset
from transformers import DataCollatorForSeq2Seq, Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_utils import get_last_checkpoint

log = logging.getLogger(__name__)


class SaveEachEpoch(TrainerCallback):
    """Save the model (weights and tokenizer, no optimizer) after every epoch as state/epoch-{e}."""

    def __init__(self, state_dir: Path, tokenizer, epochs_to_keep):
        self.state_dir, self.tokenizer, self.epochs_to_keep = state_dir, tokenizer, set(epochs_to_keep)

    def on_epoch_end(self, args, state, control, model=None, **kwargs):
        epoch = round(state.epoch)
        if epoch in self.epochs_to_keep:
            out = self.state_dir / f"epoch-{epoch}"
            model.save_pretrained(out)
            self.tokenizer.save_pretrained(out)
            log.info("saved epoch %d model to %s", epoch, out)


def training_arguments(hp: dict, output_dir: Path, seed: int) -> TrainingArguments:
    return TrainingArguments(
        output_dir=str(output_dir),
        num_train_epochs=hp["epochs"],
        learning_rate=hp["learning_rate"],
        lr_scheduler_type=hp["lr_scheduler"],
        warmup_steps=hp["warmup_ratio"],  # a float below 1 is a ratio of the total steps
        weight_decay=hp["weight_decay"],
        per_device_train_batch_size=hp["batch_size"],
        gradient_accumulation_steps=hp["gradient_accumulation_steps"],
        train_sampling_strategy=hp.get("sampling", "random"),
        bf16=hp.get("bf16", False),
        seed=seed,
        data_seed=seed,
        save_strategy="epoch",
        save_total_limit=1,
        logging_strategy="steps",
        logging_steps=max(1, hp.get("logging_steps", 10)),
        report_to="none",
        disable_tqdm=False,
        dataloader_num_workers=0,
    )


def train(model, tokenizer, examples: list[dict], hp: dict, state_dir, seed: int, epochs_to_keep) -> dict:
    """Fine-tune `model` on `examples`; return {epoch: folder in state_dir} and the loss log."""
    state_dir = Path(state_dir)
    checkpoints = state_dir / "checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)
    tokenizer.padding_side = "right"
    dataset = Dataset.from_dict(
        {"input_ids": [e["input_ids"] for e in examples], "labels": [e["labels"] for e in examples]}
    )
    trainer = Trainer(
        model=model,
        args=training_arguments(hp, checkpoints, seed),
        train_dataset=dataset,
        data_collator=DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=-100, padding=True),
        processing_class=tokenizer,
        callbacks=[SaveEachEpoch(state_dir, tokenizer, epochs_to_keep)],
    )
    last = get_last_checkpoint(str(checkpoints))
    if last:
        log.info("resuming from %s", last)
    trainer.train(resume_from_checkpoint=last)
    history = [h for h in trainer.state.log_history if "loss" in h or "train_loss" in h]
    (state_dir / "train_log.json").write_text(json.dumps(history, indent=1))
    return {e: state_dir / f"epoch-{e}" for e in sorted(epochs_to_keep)}


def publish(state_dir, moves: dict) -> None:
    """Move finished folders from the state folder to their outputs, then drop the state folder."""
    for src, dst in moves.items():
        dst = Path(dst)
        if dst.exists():
            shutil.rmtree(dst)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(src), str(dst))
    shutil.rmtree(state_dir, ignore_errors=True)
