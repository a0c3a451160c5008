"""Run by the DDP tests, alone or under torchrun: trains through the Trainer API, then every rank
saves the weights it holds to ``<out>/rank<r>.safetensors`` so the test can compare ranks."""

import argparse
import json
import os

import torch
from safetensors.torch import save_file

from densenet.engine.config import load_preset
from densenet.engine.distributed import init_distributed, shutdown
from densenet.engine.trainer import Trainer

parser = argparse.ArgumentParser()
parser.add_argument("--out", required=True)
parser.add_argument("--data-dir", required=True)
parser.add_argument("--batch-size", type=int, required=True)
parser.add_argument("--epochs", type=int, default=1)
parser.add_argument("--interrupt-at", help="EPOCH,BATCH: stop there as Ctrl-C would")
parser.add_argument("--resume", action="store_true")
parser.add_argument("--finetune", metavar="WEIGHTS", help="start from WEIGHTS, classifier only in epoch 1, then all "
                    "but the stem and denseblock1, the backbone at a tenth of the rate")
parser.add_argument("--mix", action="store_true", help="Mixup, CutMix and RandAugment on; save each rank's mixing "
                    "generator state to <out>/mix<rank>.pt")
parser.add_argument("--recipe", action="store_true", help="EMA 0.9, 2 micro-batches per step, AdamW, the last epoch "
                    "checkpoint kept; every rank also saves its EMA weights as <out>/ema<r>.safetensors")
args = parser.parse_args()

config = load_preset("d2l-fashion-mnist").replace({
    "data.data_dir": args.data_dir, "data.resize": 32, "data.train_subset": 512, "data.test_subset": 200,
    "run.batch_size": args.batch_size, "run.epochs": args.epochs, "run.precision": "fp32", "run.compile": False,
    "run.device": "cpu", "optim.lr": 0.05,
})
if args.finetune:
    config = config.replace({"model.init_from": args.finetune, "model.freeze_until": "denseblock1",
                             "optim.head_epochs": 1, "optim.backbone_lr_scale": 0.1, "optim.decay_bn_bias": False,
                             "optim.weight_decay": 1e-3, "optim.momentum": 0.9})
if args.mix:
    config = config.replace({"data.mixup": 0.4, "data.cutmix": 1.0, "data.augment": "randaugment",
                             "optim.label_smoothing": 0.1})
if args.recipe:
    config = config.replace({"optim.ema": 0.9, "run.accum_steps": 2, "optim.optimizer": "adamw", "optim.lr": 0.002,
                             "run.keep_checkpoints": 1})
ctx = init_distributed("cpu")
stop_at = tuple(int(v) for v in args.interrupt_at.split(",")) if args.interrupt_at else None
trainer = Trainer(config, os.path.join(args.out, "run"), ctx=ctx, progress=False,
                  on_batch_end=lambda s: (s.epoch, s.batch) == stop_at)
summary = trainer.fit(resume=args.resume)
state = {k: v.contiguous() for k, v in trainer.model.state_dict().items()}
save_file(state, os.path.join(args.out, f"rank{ctx.rank}.safetensors"))
if args.mix:
    torch.save(trainer.mixer.generator.get_state(), os.path.join(args.out, f"mix{ctx.rank}.pt"))
if trainer.ema is not None:
    save_file({k: v.contiguous() for k, v in trainer.ema.module.state_dict().items()},
              os.path.join(args.out, f"ema{ctx.rank}.safetensors"))
with open(os.path.join(args.out, f"summary{ctx.rank}.json"), "w") as fh:
    json.dump(summary, fh)
shutdown(ctx)
