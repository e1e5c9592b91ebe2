"""NatureCNN: the paper's architecture, uint8 scaling inside, and a clear shape error."""

import math

import pytest
import torch

from atari_dqn.network import NatureCNN


def test_parameter_count_is_natures_1_686_180_for_four_actions():
    assert sum(p.numel() for p in NatureCNN(4).parameters()) == 1_686_180


def test_forward_maps_uint8_stacks_to_one_float_q_per_action():
    q = NatureCNN(6)(torch.zeros(3, 4, 84, 84, dtype=torch.uint8))
    assert q.shape == (3, 6)
    assert q.dtype == torch.float32


def test_forward_scales_bytes_by_1_over_255_inside():
    net = NatureCNN(4, generator=torch.Generator().manual_seed(0))
    frames = torch.randint(0, 256, (2, 4, 84, 84), dtype=torch.uint8)
    expected = net.layers(frames.to(torch.float32) / 255.0)
    torch.testing.assert_close(net(frames), expected, rtol=0, atol=0)
    # and not, say, left in [0, 255]
    assert not torch.allclose(net.layers(frames.to(torch.float32)), expected)


@pytest.mark.parametrize(
    ("shape", "dtype"),
    [((2, 3, 84, 84), torch.uint8), ((4, 84, 84), torch.uint8), ((2, 4, 84, 84), torch.float32)],
)
def test_wrong_input_shape_or_dtype_names_expected_and_received(shape, dtype):
    with pytest.raises(ValueError) as info:
        NatureCNN(4)(torch.zeros(shape, dtype=dtype))
    message = str(info.value)
    assert "uint8[B, 4, 84, 84]" in message
    assert str(list(shape)) in message


def test_init_is_deepmind_uniform_fan_in_for_weights_and_biases():
    net = NatureCNN(4, generator=torch.Generator().manual_seed(1))
    layers = [m for m in net.layers if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    fan_ins = [4 * 8 * 8, 32 * 4 * 4, 64 * 3 * 3, 3136, 512]
    for layer, fan_in in zip(layers, fan_ins, strict=True):
        bound = 1 / math.sqrt(fan_in)
        for tensor in (layer.weight, layer.bias):
            assert tensor.abs().max() <= bound
            # uniform on [-b, b] has std b / sqrt(3); loose enough for 32 biases
            assert tensor.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.3)


def test_same_generator_seed_gives_the_same_network():
    a = NatureCNN(4, generator=torch.Generator().manual_seed(7))
    b = NatureCNN(4, generator=torch.Generator().manual_seed(7))
    c = NatureCNN(4, generator=torch.Generator().manual_seed(8))
    for pa, pb, pc in zip(a.parameters(), b.parameters(), c.parameters(), strict=True):
        assert torch.equal(pa, pb)
        assert not torch.equal(pa, pc)
