"""Run by test_photo_training.py under torchrun: trains on a streamed photo folder through the Trainer API.

Every rank saves the weights it ends with (``rank<r>.safetensors``) and ``rank<r>.json``: the files its
training loader's sampler visits in each epoch, and the batches ``on_batch_end`` saw, so the test can
check that the ranks' shards are disjoint and cover the folder.
"""

import argparse
import json
import os

from safetensors.torch import save_file

from densenet.engine.config import load_preset
from densenet.engine.distributed import init_distributed, shutdown
from densenet.engine.trainer import Trainer

parser = argparse.ArgumentParser()
parser.add_argument("--out", required=True)
parser.add_argument("--data-dir", required=True)
parser.add_argument("--epochs", type=int, default=2)
args = parser.parse_args()

config = load_preset("d2l-fashion-mnist").replace({
    "data.dataset": "image-folder", "data.data_dir": args.data_dir, "data.resize": 32, "data.stream": True,
    "data.workers": 1, "data.normalize": True, "run.batch_size": 8, "run.epochs": args.epochs,
    "run.precision": "fp32", "run.compile": False, "run.device": "cpu", "optim.lr": 0.05,
})
ctx = init_distributed("cpu")
seen: list[list[int]] = []
trainer = Trainer(config, os.path.join(args.out, "run"), ctx=ctx, progress=False,
                  on_batch_end=lambda s: seen.append([s.epoch, s.batch, s.batches]))
summary = trainer.fit()
loader = trainer.data.train_loader
shards = {str(epoch): [str(loader.dataset.files.paths[int(i)]) for i in loader.epoch_order(epoch)]
          for epoch in range(1, args.epochs + 1)}
save_file({k: v.contiguous() for k, v in trainer.model.state_dict().items()},
          os.path.join(args.out, f"rank{ctx.rank}.safetensors"))
with open(os.path.join(args.out, f"rank{ctx.rank}.json"), "w") as fh:
    json.dump({"shards": shards, "batches": seen, "summary": summary, "paths": trainer.data.paths,
               "bad_files": sorted(trainer.data.bad_files()),
               "sampler_rank": loader.sampler.rank, "world": loader.sampler.num_replicas}, fh)
shutdown(ctx)
