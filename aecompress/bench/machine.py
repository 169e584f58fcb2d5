"""Where a benchmark ran: the machine, the libraries and the aec model, for the record
(`MachineInfo`), so that timings can be compared with those of other runs."""

from __future__ import annotations

import os
import platform
import sys
from datetime import datetime, timezone
from typing import TYPE_CHECKING

import numpy as np

from .results import MachineInfo

if TYPE_CHECKING:
    from ..codec import Codec


def _processor() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def machine_info(aec: Codec | None = None, workers: int = 1) -> MachineInfo:
    import PIL

    torch_version = threads = device = model_id = fingerprint = None
    # torch is only imported here when something else already has: a peers-only run stays light.
    if "torch" in sys.modules or aec is not None:
        import torch

        from ..device import describe

        torch_version = str(torch.__version__)
        threads = torch.get_num_threads()
        if aec is not None:
            device = describe(aec.device)
            model_id = aec.checkpoint.model_id
            fingerprint = aec.checkpoint.fingerprint.hex()
    return MachineInfo(
        date=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        platform=platform.platform(),
        machine=platform.machine(),
        processor=_processor(),
        cpu_count=os.cpu_count(),
        python=platform.python_version(),
        numpy=np.__version__,
        pillow=PIL.__version__,
        torch=torch_version,
        torch_threads=threads,
        device=device,
        model_id=model_id,
        model_fingerprint=fingerprint,
        workers=workers,
    )
