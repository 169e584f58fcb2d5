"""The training loop's loss: the mixed-precision forward matches the float32 one and keeps the
rates in float32; the loss with cached lambdas is the loss with the model's."""

import pytest
import torch
from conftest import TINY

from aecompress.model import HyperpriorModel
from aecompress.training.loop import rd_loss

pytestmark = pytest.mark.usefixtures("one_thread")


def test_mixed_forward_matches_the_model_and_keeps_rates_float32():
    torch.manual_seed(0)
    model = HyperpriorModel(TINY)
    x = torch.rand(2, 3, 64, 64)
    position = torch.tensor([0.3, 1.7])
    torch.manual_seed(1)
    ref = model(x, position)
    torch.manual_seed(1)
    same = model(x, position, inner_dtype=None)
    for a, b in ((ref.x_hat, same.x_hat), (ref.bits_y, same.bits_y), (ref.bits_z, same.bits_z)):
        assert torch.equal(a, b)
    torch.manual_seed(1)
    bf = model(x, position, inner_dtype=torch.bfloat16)
    assert bf.x_hat.dtype == bf.bits_y.dtype == bf.bits_z.dtype == torch.float32
    assert torch.allclose(bf.bits_z, ref.bits_z, rtol=0.05)
    torch.manual_seed(1)
    loss, bpp, psnr = rd_loss(model, x, position, torch.bfloat16)
    loss.backward()
    assert torch.isfinite(loss) and all(
        p.grad is not None and torch.isfinite(p.grad).all() for p in model.g_a.parameters()
    )
    # The cached lambdas give the loss model.lambdas gives.
    log_l = torch.log(torch.tensor(TINY.lambdas)).unsqueeze(1)
    torch.manual_seed(1)
    a = rd_loss(model, x, position)[0]
    torch.manual_seed(1)
    b = rd_loss(model, x, position, log_lambdas=log_l)[0]
    assert torch.equal(a, b)
