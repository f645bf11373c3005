"""The shared building blocks: ``upsample_like`` is bilinear resizing with
``align_corners=False``, in value and in gradient, whatever path computes it."""

import pytest
import torch
import torch.nn.functional as F

from fusionlab.layers import ConvBNReLU, upsample_like

SIZES = [((8, 10), (30, 40)),     # x4 / x4: GFF's c5 to c2 at output stride 32
         ((4, 5), (120, 160)),    # x30 / x32: logits to the image
         ((7, 9), (23, 31)),      # non-integer factors
         ((1, 1), (5, 7)),        # one pixel: a constant map
         ((3, 3), (3, 10)),       # one axis unchanged
         ((30, 40), (8, 10)),     # a reduction
         ((6, 20), (12, 10))]     # one axis up, one down


@pytest.mark.parametrize("size, target", SIZES)
def test_upsample_like_is_bilinear_interpolation_in_value_and_gradient(size, target):
    torch.manual_seed(0)
    x = torch.randn(2, 3, *size, dtype=torch.float64, requires_grad=True)
    weights = torch.randn(2, 3, *target, dtype=torch.float64)
    ours = upsample_like(x, target)
    (grad_ours,) = torch.autograd.grad((ours * weights).sum(), x)
    ref = F.interpolate(x, size=target, mode="bilinear", align_corners=False)
    (grad_ref,) = torch.autograd.grad((ref * weights).sum(), x)
    assert ours.shape == (2, 3, *target)
    assert torch.allclose(ours, ref, atol=1e-12)
    assert torch.allclose(grad_ours, grad_ref, atol=1e-12)


def test_upsample_like_reads_the_size_of_a_reference_and_keeps_a_matching_map():
    x = torch.randn(1, 2, 4, 6)
    assert upsample_like(x, torch.empty(5, 8, 12)).shape == (1, 2, 8, 12)
    assert upsample_like(x, x) is x


def test_upsample_like_keeps_the_dtype_and_channels_last_inputs_give_the_same_values():
    x = torch.randn(2, 4, 5, 6)
    assert upsample_like(x.to(torch.bfloat16), (10, 12)).dtype == torch.bfloat16
    dense = upsample_like(x, (10, 12))
    assert torch.allclose(upsample_like(x.to(memory_format=torch.channels_last), (10, 12)),
                          dense, atol=1e-6)


def test_conv_bn_relu_keeps_the_size_and_refuses_an_even_kernel():
    block = ConvBNReLU(3, 5, kernel_size=3, dilation=2)
    assert block(torch.randn(2, 3, 9, 11)).shape == (2, 5, 9, 11)
    with pytest.raises(ValueError, match="odd"):
        ConvBNReLU(3, 5, kernel_size=4)
