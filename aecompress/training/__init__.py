"""Rate–distortion training of the hyperprior model on your own images, one module per job:

- `data`: finding and decoding the training images, packing them on the training device, and
  each step's batch of crops and trade-off positions;
- `state`: the run's state files, state.pt (resumable) and best.pt (weights), written and read;
- `options`: what the `train` command is asked, checked and resolved into the run's plan;
- `loop`: the training loop (loss, optimizer, schedule, periodic validation, saving), which
  reports its progress through `progress.Reporter` only;
- `distributed`: the processes of a run started by torchrun: the process group, each
  process's part of the batch, and the decisions of process 0 that every process follows;
- `progress`: the figures of a log step, the estimate of the time left, and the `Reporter`
  protocol (training and export progress);
- `budget`: the time budget of the whole command: the room kept for the export, the steps
  that still fit, and when the process started;
- `outcome`: what a run measures its model on (--valid, else a check on training images) and
  its verdict: against the --init start, and whether the model is far from usable;
- `finish`: the end of a run: the candidates exported and measured, the one shipped, and
  model.pt and its card written, or the start kept;
- `run`: the `aecompress train` command as a plain function: the data loaded, the start
  measured and the time budget planned, the training call, and the export.

The progress display is the command line's (`aecompress.cli.train_progress`).
"""
