"""Training state files: a state.pt of the first version still loads, gives its weights and
resumes."""

import pytest
import torch
from conftest import OLD_STATE_KEYS, TINY_ARGS, make_images, train_cli

from aecompress.checkpoint import load_checkpoint
from aecompress.training.state import model_from_weights, read_init, read_state

pytestmark = pytest.mark.usefixtures("one_thread")


def test_old_state_files_still_load_and_resume(tmp_path):
    """A state.pt with only the keys of the first version (no format, data, CUDA RNG, ...)."""
    data = make_images(tmp_path / "data")
    out = tmp_path / "run"
    assert train_cli(data, "--out", out, "--steps", 2, *TINY_ARGS).exit_code == 0
    state = torch.load(out / "state.pt", weights_only=True)
    old = {k: state[k] for k in OLD_STATE_KEYS}
    old["python_rng"] = __import__("random").Random(0).getstate()
    torch.save(old, tmp_path / "old.pt")
    assert read_state(tmp_path / "old.pt").step == 2
    model_from_weights(*read_init(tmp_path / "old.pt")[:2])
    r = train_cli(data, "--out", tmp_path / "run2", "--steps", 3, "--resume", tmp_path / "old.pt")
    assert r.exit_code == 0, r.output
    assert load_checkpoint(tmp_path / "run2" / "model.pt").provenance["steps"] == "3"
