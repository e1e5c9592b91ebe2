"""NatureCNN: the paper's architecture, uint8 scaling inside, a clear shape error; its dueling,
distributional and noisy heads; NoisyLinear against the paper's definition."""

import math

import pytest
import torch

from atari_dqn.network import NatureCNN, NoisyLinear, factorised_noise, make_support


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
    [((2, 3, 84, 84), torch.uint8), ((4, 84, 84), torch.uint8), ((2, 4, 84, 84), torch.float64)],
)
def test_wrong_input_shape_or_dtype_names_expected_and_received(shape, dtype):
    with pytest.raises(ValueError) as info:
        NatureCNN(4)(torch.zeros(shape, dtype=dtype))
    message = str(info.value)
    assert "uint8[B, 4, 84, 84]" in message
    assert str(list(shape)) in message


def test_float32_pixels_on_the_0_255_scale_read_as_their_bytes_do():
    # An augmented batch reaches the network as float32 pixels.
    net = NatureCNN(4, generator=torch.Generator().manual_seed(0))
    frames = torch.randint(0, 256, (2, 4, 84, 84), dtype=torch.uint8)
    torch.testing.assert_close(net(frames.float()), net(frames), rtol=0, atol=0)


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


def _noisy(in_features=6, out_features=3, sigma_0=0.5, seed=0):
    return NoisyLinear(in_features, out_features, sigma_0, torch.Generator().manual_seed(seed))


def test_noisy_linear_initialises_as_the_paper_says():
    # Fortunato et al. 2018, section 3.2: mu ~ U(-1/sqrt(p), 1/sqrt(p)), sigma = sigma_0/sqrt(p).
    layer = _noisy(in_features=400, out_features=300)
    bound = 1 / math.sqrt(400)
    for mu in (layer.weight_mu, layer.bias_mu):
        assert mu.abs().max() <= bound
        assert mu.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.1)
    for sigma in (layer.weight_sigma, layer.bias_sigma):
        assert torch.all(sigma == 0.5 * bound)


def test_noisy_linear_has_twice_the_parameters_of_a_linear_layer():
    # The paper: a mean and a scale for each weight and bias, 2 (pq + q).
    assert sum(p.numel() for p in _noisy(6, 3).parameters()) == 2 * (6 * 3 + 3)


def test_the_noise_is_factorised_sgn_sqrt_abs_of_two_normal_vectors():
    layer = _noisy()
    x = torch.randn(4, 6)
    normal = torch.randn(9)
    noise = factorised_noise(normal)
    torch.testing.assert_close(noise, normal.sign() * normal.abs().sqrt())
    eps_in, eps_out = noise[:6], noise[6:]
    # The weights of the paper's eq. 9-11, formed in full: eps_w = f(eps_out) f(eps_in)^T.
    weight = layer.weight_mu + layer.weight_sigma * torch.outer(eps_out, eps_in)
    bias = layer.bias_mu + layer.bias_sigma * eps_out
    torch.testing.assert_close(layer(x, noise), x @ weight.T + bias)


def test_a_network_draws_its_noise_from_the_generator_it_is_given():
    net = NatureCNN(4, noise_sigma0=0.5, generator=torch.Generator().manual_seed(0))
    assert net.noise_size == (3136 + 512) + (512 + 4)
    a = net.sample_noise(torch.Generator().manual_seed(5), draws=2)
    expected = factorised_noise(
        torch.randn(2, net.noise_size, generator=torch.Generator().manual_seed(5))
    )
    torch.testing.assert_close(a, expected, rtol=0, atol=0)
    assert not torch.equal(a[0], a[1])  # each draw is new


def test_over_many_draws_a_noisy_layers_output_has_the_noiseless_mean_and_sigmas_variance():
    layer = _noisy(in_features=5, out_features=2, sigma_0=0.5, seed=3)
    x = torch.randn(1, 5, generator=torch.Generator().manual_seed(1))
    draws = factorised_noise(torch.randn(40_000, 7, generator=torch.Generator().manual_seed(2)))
    with torch.no_grad():
        y = torch.stack([layer(x, noise)[0] for noise in draws])
        noiseless = layer(x, None)[0]
        # Var of sum_j sigma_ij f(a_i) f(b_j) x_j + sigma_b_i f(a_i): E f(a)^2 = E|a| =
        # sqrt(2/pi), and the f(b_j) are independent with mean 0, so
        # Var = (2/pi) sum_j (sigma_ij x_j)^2 + sqrt(2/pi) sigma_b_i^2.
        variance = (2 / math.pi) * (layer.weight_sigma * x).square().sum(dim=1) + math.sqrt(
            2 / math.pi
        ) * layer.bias_sigma.square()
    torch.testing.assert_close(
        y.mean(dim=0), noiseless, rtol=0, atol=4 * (variance / 40_000).sqrt().max().item()
    )
    torch.testing.assert_close(y.var(dim=0), variance, rtol=0.05, atol=0)


def test_with_sigma_0_a_noisy_layer_is_the_linear_layer_of_its_means():
    layer = _noisy(sigma_0=0.0)
    x = torch.randn(4, 6)
    noise = factorised_noise(torch.randn(9))
    plain = torch.nn.functional.linear(x, layer.weight_mu, layer.bias_mu)
    torch.testing.assert_close(layer(x, noise), plain, rtol=0, atol=0)
    torch.testing.assert_close(layer(x, None), plain, rtol=0, atol=0)


def test_a_noisy_network_replaces_every_fully_connected_layer_and_none_without_noise_is_its_mean():
    net = NatureCNN(4, dueling=True, noise_sigma0=0.5, generator=torch.Generator().manual_seed(0))
    assert not any(isinstance(m, torch.nn.Linear) for m in net.modules())
    assert sum(isinstance(m, NoisyLinear) for m in net.modules()) == 4
    frames = torch.randint(0, 256, (2, 4, 84, 84), dtype=torch.uint8)
    noise = net.sample_noise(torch.Generator().manual_seed(1))[0]
    with torch.no_grad():
        assert torch.equal(net(frames), net(frames))  # no noise: the mean weights
        assert not torch.allclose(net(frames, noise), net(frames))


def test_a_distributional_head_gives_a_softmax_over_atoms_whose_mean_is_q():
    support = make_support(-10.0, 10.0, 51)
    net = NatureCNN(3, support=support, generator=torch.Generator().manual_seed(0))
    # fc 512, then 51 logits per action: 3136*512 + 512 + 512*153 + 153 more than the convs.
    convs = 1_686_180 - (3136 * 512 + 512 + 512 * 4 + 4)
    assert sum(p.numel() for p in net.parameters()) == convs + 3136 * 512 + 512 + 512 * 153 + 153
    frames = torch.randint(0, 256, (2, 4, 84, 84), dtype=torch.uint8)
    logits = net.logits(frames)
    assert logits.shape == (2, 3, 51)
    probs = torch.softmax(logits, dim=2)
    torch.testing.assert_close(net(frames), (probs * support).sum(dim=2))
    assert "support" not in net.state_dict()  # the config's, not a weight


def test_a_dueling_distributional_head_sums_value_and_centred_advantage_per_atom():
    # Hessel et al. 2018, section 3: logits = v + a - mean over actions of a, for each atom.
    support = make_support(-1.0, 1.0, 5)
    net = NatureCNN(3, dueling=True, support=support, generator=torch.Generator().manual_seed(2))
    frames = torch.randint(0, 256, (2, 4, 84, 84), dtype=torch.uint8)
    features = net.layers(frames.float() / 255.0)
    v = net.head.value(features).view(2, 1, 5)
    a = net.head.advantage(features).view(2, 3, 5)
    torch.testing.assert_close(net.logits(frames), v + a - a.mean(dim=1, keepdim=True))
