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


def test_without_dueling_the_network_is_the_nature_one_layer_for_layer():
    net = NatureCNN(4)
    shapes = [tuple(t.shape) for t in net.state_dict().values()]
    assert shapes == [
        (32, 4, 8, 8), (32,), (64, 32, 4, 4), (64,), (64, 64, 3, 3), (64,),
        (512, 3136), (512,), (4, 512), (4,),
    ]  # fmt: skip
    assert isinstance(net.head, torch.nn.Identity)


def test_the_dueling_head_has_two_512_unit_streams_and_3_292_837_parameters_for_four_actions():
    net = NatureCNN(4, dueling=True)
    assert sum(p.numel() for p in net.parameters()) == 3_292_837
    value, advantage = net.head.value, net.head.advantage
    assert [m.out_features for m in value if isinstance(m, torch.nn.Linear)] == [512, 1]
    assert [m.out_features for m in advantage if isinstance(m, torch.nn.Linear)] == [512, 4]


def test_dueling_q_is_value_plus_advantage_less_its_mean():
    net = NatureCNN(5, dueling=True, generator=torch.Generator().manual_seed(2))
    frames = torch.randint(0, 256, (3, 4, 84, 84), dtype=torch.uint8)
    features = net.layers(frames.float() / 255.0)
    v, a = net.head.value(features), net.head.advantage(features)
    torch.testing.assert_close(net(frames), v + a - a.mean(dim=1, keepdim=True))
    # The mean advantage is subtracted: Q's mean over actions is V.
    torch.testing.assert_close(net(frames).mean(dim=1), v.squeeze(1))


def test_the_dueling_head_scales_the_gradient_into_the_convolutions_by_1_over_sqrt_2():
    net = NatureCNN(3, dueling=True, generator=torch.Generator().manual_seed(4))
    features = torch.randn(2, 3136, requires_grad=True)
    net.head(features).sum().backward()
    scaled = features.grad.clone()
    features.grad = None
    v, a = net.head.value(features), net.head.advantage(features)
    (v + a - a.mean(dim=1, keepdim=True)).sum().backward()  # the same sum, unscaled
    torch.testing.assert_close(scaled, features.grad / math.sqrt(2))
