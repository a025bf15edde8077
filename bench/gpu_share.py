"""What one accelerator gives stage trials, in one run (a benchmark for a lent GPU, prepared
and checked on the CPU; not a test).

  throughput  images/s of the training step stages 2 and 3 run: a partial-ReLU model (masks
              keeping 10 %; ResNet-18 at 32x32 by default), SGD, bf16 autocast and
              channels_last on CUDA, the uint8 data on the device batched, cropped and flipped
              by TensorLoader (stages/loader.py), as stages/train.py does.
  sharing     the same loop in k processes at once on the same device, for each k of
              --shares: what `gpus = 1/k` in [resources] amounts to (Ray only lets k trials
              see one GPU; it does not split its memory or time). Prints the total images/s
              and its ratio to one process alone.

    python bench/gpu_share.py --device cuda                          # on a GPU (about 1 min)
    python bench/gpu_share.py --device cpu --model resnet20 --input-size 16 \\
        --batch-size 32 --steps 3 --shares 1 2                       # the CPU check
"""

from __future__ import annotations

import argparse
import sys
import time
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from relu_overhead import sgd_step, sync, with_partial_masks  # noqa: E402

from stages.data import DataBundle, Split  # noqa: E402
from stages.loader import TensorLoader  # noqa: E402
from stages.models import build_model  # noqa: E402
from stages.partial_relu import init_masks  # noqa: E402
from stages.train import pick_device, prepare  # noqa: E402


def worker(args: dict[str, Any], ready: Any, results: Any) -> None:
    """Build the model and data, warm up, wait for every process, then time `steps` steps."""
    torch.set_num_threads(args["threads"])
    device = pick_device(args["device"])
    size, bs = args["input_size"], args["batch_size"]
    torch.manual_seed(0)
    base = build_model(args["model"], 10, 3)
    init_masks(base, size, 3)
    model = prepare(with_partial_masks(base, 0.1), device)
    n = bs * (args["steps"] + args["warmup"])
    split = Split(
        torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8), torch.randint(0, 10, (n,))
    )
    bundle = DataBundle("bench", 10, 3, size, split, split, split, (0.5,) * 3, (0.25,) * 3, 4, True)
    loader = TensorLoader(split, bundle, bs, train=True, device=device, drop_last=True)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    model.train()
    batches = iter(loader)

    def steps(count: int) -> None:
        for _ in range(count):
            x, y = next(batches)
            if device.type == "cuda":
                x = x.contiguous(memory_format=torch.channels_last)
            sgd_step(model, opt, x, y)
        sync(device)

    steps(args["warmup"])
    ready.wait()  # every process starts its timed steps together
    t0 = time.perf_counter()
    steps(args["steps"])
    results.put((bs * args["steps"], t0, time.perf_counter()))


def shared(args: dict[str, Any], k: int) -> float:
    """Total images/s of k processes training at once on the device."""
    ctx = get_context("spawn")  # CUDA cannot be used in a forked child
    ready, results = ctx.Barrier(k), ctx.Queue()
    procs = [ctx.Process(target=worker, args=(args, ready, results)) for _ in range(k)]
    for p in procs:
        p.start()
    got = [results.get() for _ in procs]
    for p in procs:
        p.join()
        if p.exitcode != 0:
            raise SystemExit(f"a worker failed (exit {p.exitcode})")
    images = sum(g[0] for g in got)
    return images / (max(g[2] for g in got) - min(g[1] for g in got))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--model", default="resnet18")
    ap.add_argument("--input-size", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--steps", type=int, default=100, help="timed steps per process (100)")
    ap.add_argument("--warmup", type=int, default=10, help="untimed steps first (10)")
    ap.add_argument("--shares", type=int, nargs="+", default=[1, 2, 4, 8], help="k processes")
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads per process")
    args = vars(ap.parse_args())
    device = pick_device(args["device"])
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"{args['model']} at {args['input_size']}x{args['input_size']}, batch "
          f"{args['batch_size']}, masks keeping 10 %, on {name}")  # fmt: skip
    alone = 0.0
    for k in args["shares"]:
        total = shared(args, k)
        alone = alone or total
        print(f"{k} process(es): {total:9.0f} images/s in total, {total / alone:5.2f}x one alone")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
