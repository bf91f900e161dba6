"""A tiny GPT-2 trained by ``transformers.Trainer``, recorded by netlapse: one callback.

    python examples/hf_trainer.py --out runs/hf-gpt2
    netlapse ui runs/hf-gpt2

The model is built from a config (no download): 2 layers, 4 heads, width 64, a 16-symbol
vocabulary. The data is generated: sequences that count upwards modulo 16 from a random start,
so the next token is always predictable and the loss falls fast. The Trainer clips gradients
(max_grad_norm) and accumulates 2 micro-batches per update; netlapse stores the clipped,
accumulated gradients each update used, the weights after it, the Trainer's logs (loss,
learning_rate, grad_norm, eval_loss) at their step, and the TrainingArguments in the config.
"""

import argparse

import torch
import transformers

from netlapse.transformers import Recorder

VOCAB, LENGTH = 16, 24


class Counting(torch.utils.data.Dataset):
    """x, x+1, x+2, ... (mod 16): a language a small transformer learns in a few dozen steps."""

    def __init__(self, n: int, seed: int):
        g = torch.Generator().manual_seed(seed)
        start = torch.randint(0, VOCAB, (n, 1), generator=g)
        self.ids = (start + torch.arange(LENGTH)) % VOCAB

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        return {"input_ids": self.ids[i], "labels": self.ids[i]}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/hf-gpt2", help="run folder to create")
    ap.add_argument("--max-steps", type=int, default=60, help="optimizer updates")
    ap.add_argument("--eval-every", type=int, default=20, help="evaluate every N updates")
    ap.add_argument("--scratch", default=None, help="Trainer output_dir (default: <out>-trainer)")
    args = ap.parse_args(argv)

    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=VOCAB, n_positions=LENGTH, n_embd=64, n_layer=2,
                                     n_head=4, bos_token_id=0, eos_token_id=0)
    model = transformers.GPT2LMHeadModel(config)
    training = transformers.TrainingArguments(
        output_dir=args.scratch or f"{args.out}-trainer", max_steps=args.max_steps,
        per_device_train_batch_size=16, gradient_accumulation_steps=2, learning_rate=3e-3,
        max_grad_norm=1.0, warmup_steps=5, logging_steps=1, eval_strategy="steps",
        eval_steps=args.eval_every, per_device_eval_batch_size=64, save_strategy="no",
        report_to=[], use_cpu=True, disable_tqdm=True, seed=0)
    recorder = Recorder(args.out, overwrite=True, weights="stats", grads="stats",
                        activations="stats", exclude=["*.drop", "*.attn_dropout", "*.resid_dropout"])
    trainer = transformers.Trainer(model=model, args=training, train_dataset=Counting(2048, 0),
                                   eval_dataset=Counting(128, 1), callbacks=[recorder])
    trainer.train()
    final = trainer.evaluate()
    first = next(h["loss"] for h in trainer.state.log_history if "loss" in h)
    print(f"{trainer.state.global_step} updates recorded in {args.out}; "
          f"training loss {first:.3f} -> eval loss {final['eval_loss']:.3f}")


if __name__ == "__main__":
    main()
