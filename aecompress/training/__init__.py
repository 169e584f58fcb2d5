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
- `run`: the `aecompress train` command as a plain function: the data loaded, the time budget
  planned, the training call, the export and the choice of the weights shipped.

The progress display is the command line's (`aecompress.cli.train_progress`).
"""
