"""Hugging Face Transformers with runstack: ``callbacks=[RunstackCallback(...)]``.

A 2-layer GPT-2 built from a config (no download) on generated tokens.

    python examples/transformers_train.py
    torchrun --nproc_per_node 2 examples/transformers_train.py      # still one run
"""

import tempfile

import torch
from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainingArguments

import runstack
from runstack.integrations.transformers import RunstackCallback


def main() -> None:
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(n_layer=2, n_head=2, n_embd=32, vocab_size=64, n_positions=32))
    tokens = torch.randint(0, 64, (64, 16), generator=torch.Generator().manual_seed(0))
    samples = [{"input_ids": t, "labels": t} for t in tokens]
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(output_dir=out, per_device_train_batch_size=8, num_train_epochs=2, logging_steps=1,
                                 eval_strategy="epoch", save_strategy="no", report_to=[], use_cpu=True,
                                 learning_rate=1e-3, seed=0, disable_tqdm=True)  # fmt: skip
        trainer = Trainer(model=model, args=args, train_dataset=samples, eval_dataset=samples[:16],
                          callbacks=[RunstackCallback(project="examples", tags=["transformers"])])  # fmt: skip
        trainer.train()


if __name__ == "__main__":
    main()
    # What this example logged, and where to look next.
    latest = runstack.Api().runs(order="created_at")[-1]
    print(f"logged run {latest.id} ({latest.status}) in project {latest.project!r}: see `runstack show {latest.id}`")
