"""`aecompress train` as torchrun starts it in the tests of tests/test_distributed.py, with two
things only a test needs:

- after every optimizer step, a SHA-256 of all the weights goes to
  $AEC_TEST_DIGESTS/rank-$RANK.json (written at exit), so the test can compare the processes'
  weights step by step;
- with $AEC_TEST_FAIL=RANK:STEP, that process fails with an AecError when it reaches that step
  (STEP "load": while it loads the training images).

Run as: torchrun --nproc-per-node 2 tests/distributed_worker.py train DATA --out DIR ...
"""

import atexit
import hashlib
import json
import os
import sys
from pathlib import Path

from torch.optim.optimizer import register_optimizer_step_post_hook

import aecompress.training.loop as loop_module
import aecompress.training.run as run_module
from aecompress.cli import app
from aecompress.errors import AecError

digests: list[str] = []


def record(optimizer, args, kwargs) -> None:
    h = hashlib.sha256()
    for group in optimizer.param_groups:
        for p in group["params"]:
            h.update(p.detach().cpu().contiguous().numpy().tobytes())
    digests.append(h.hexdigest())


def write_digests() -> None:
    folder = os.environ.get("AEC_TEST_DIGESTS")
    if folder:
        path = Path(folder) / f"rank-{os.environ.get('RANK', '0')}.json"
        path.write_text(json.dumps(digests))


register_optimizer_step_post_hook(record)
atexit.register(write_digests)

fail = os.environ.get("AEC_TEST_FAIL")
if fail:
    rank, step = fail.split(":")
    failing = int(os.environ["RANK"]) == int(rank)
    if step == "load":
        original_load = run_module.load_dataset

        def failing_load(*args, **kwargs):
            if failing:
                raise AecError("injected failure while loading")
            return original_load(*args, **kwargs)

        run_module.load_dataset = failing_load
    else:
        original = loop_module.training_batch

        def failing_batch(data, cfg, levels, at, gen, *rest):
            if at == int(step) and failing:
                raise AecError("injected failure")
            return original(data, cfg, levels, at, gen, *rest)

        loop_module.training_batch = failing_batch

sys.exit(app(prog_name="aecompress"))
