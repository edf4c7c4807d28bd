"""MixStyle (domino=style): the identity in eval; in training it moves each sample's
per-channel statistics and keeps the normalised features, exactly by the paper's formula; its
draws come from its own seeded generator, so building and running it leaves the global RNG
(and so the pairing with the baseline) untouched."""
import math
import re

import numpy as np
import pytest
import torch

import domino_seg
from domino_seg.errors import ConfigError
from domino_seg.models.style import MixStyle, style_generator


class Draws:
    """A generator stub with fixed draws: the hand-built case."""

    def __init__(self, chance, lam=(), perm=()):
        self.chance, self.lam, self.perm = chance, np.array(lam), np.array(perm)

    def random(self):
        return self.chance

    def beta(self, a, b, size):
        assert size == len(self.lam)
        return self.lam

    def permutation(self, n):
        return self.perm


def stats(x, dims):
    """Per-sample, per-channel mean and (unbiased) variance."""
    return x.mean(dims), x.var(dims)


def test_identity_in_eval_mode():
    style = MixStyle(p=1.0, generator=Draws(0.0, [0.5, 0.5], [1, 0])).eval()
    x = torch.randn(2, 3, 4, 4)
    assert style(x) is x


@pytest.mark.parametrize('channel_last', [False, True])
def test_training_moves_the_statistics_and_keeps_the_normalised_content(channel_last):
    torch.manual_seed(0)
    x = torch.randn(4, 3, 5, 6) * torch.rand(4, 3, 1, 1) * 3 + torch.randn(4, 3, 1, 1)
    if channel_last:
        x = x.flatten(2).transpose(1, 2)  # LayerNorm tokens (B, N, C)
    dims = (1,) if channel_last else (2, 3)
    style = MixStyle(p=1.0, alpha=2.0, channel_last=channel_last, eps=0,
                     generator=style_generator(0)).train()
    before = torch.random.get_rng_state()
    y = style(x)
    assert torch.equal(torch.random.get_rng_state(), before)  # its own generator only
    (mu_x, var_x), (mu_y, var_y) = stats(x, dims), stats(y, dims)
    assert not torch.allclose(mu_x, mu_y, atol=1e-3) and not torch.allclose(var_x, var_y)
    normalised = [(t - t.mean(dims, keepdim=True)) / t.var(dims, keepdim=True).sqrt()
                  for t in (x, y)]
    torch.testing.assert_close(normalised[1], normalised[0], atol=1e-4, rtol=1e-4)


def test_the_output_is_the_papers_formula_on_a_hand_built_batch():
    # sample 0: mean 3, unbiased variance 20/3; sample 1: mean 2, variance 4/3
    x = torch.tensor([[[[0., 2.], [4., 6.]]], [[[1., 1.], [3., 3.]]]])
    style = MixStyle(p=0.5, eps=0, generator=Draws(0.2, lam=[0.25, 1.0], perm=[1, 0])).train()
    y = style(x)
    sigma0, sigma1 = math.sqrt(20 / 3), math.sqrt(4 / 3)
    mixed_mean, mixed_sigma = 0.25 * 3 + 0.75 * 2, 0.25 * sigma0 + 0.75 * sigma1
    expected0 = (torch.tensor([[0., 2.], [4., 6.]]) - 3) / sigma0 * mixed_sigma + mixed_mean
    torch.testing.assert_close(y[0, 0], expected0)
    torch.testing.assert_close(y[1], x[1])  # lambda 1: its own statistics
    # a draw at or above p: no mixing this call, and nothing else drawn
    assert MixStyle(p=0.5, generator=Draws(0.5)).train()(x) is x


def test_half_precision_features_mix_in_float32_and_keep_their_dtype():
    x = torch.tensor([[[[0., 2.], [4., 6.]]], [[[1., 1.], [3., 3.]]]])
    draws = dict(lam=[0.25, 1.0], perm=[1, 0])
    full = MixStyle(p=1.0, generator=Draws(0.0, **draws)).train()(x)
    half = MixStyle(p=1.0, generator=Draws(0.0, **draws)).train()(x.bfloat16())
    assert half.dtype == torch.bfloat16
    torch.testing.assert_close(half, full.bfloat16())


def test_draws_follow_the_seed():
    first, again, other = style_generator(3), style_generator(3), style_generator(4)
    assert first.random() == again.random() != other.random()


@pytest.mark.parametrize('override,message', [
    ('domino.style.p=1.5', 'domino.style.p=1.5 is out of range: domino.style.p takes a '
                           'number in 0..1.'),
    ('domino.style.alpha=0', 'domino.style.alpha=0 is out of range: domino.style.alpha takes '
                             'a number > 0.'),
])
def test_out_of_range_style_keys_name_key_and_range(override, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        domino_seg.compose(['domino=style', override])


def test_style_model_builds_as_the_baseline_does(tiny_overrides):
    """Same seed: the same weights and keys as domino=none and the same global RNG state after
    building; a MixStyle after every backbone norm, none elsewhere."""
    built = {}
    for option in ('none', 'style'):
        torch.manual_seed(0)
        model = domino_seg.build_segmentor(domino_seg.compose(tiny_overrides +
                                                              [f'domino={option}']))
        built[option] = (model, torch.random.get_rng_state())
    (base, base_rng), (style, style_rng) = built['none'], built['style']
    assert torch.equal(base_rng, style_rng)
    assert base.state_dict().keys() == style.state_dict().keys()
    assert all(torch.equal(v, style.state_dict()[k]) for k, v in base.state_dict().items())
    mixers = [name for name, m in style.named_modules() if isinstance(m, MixStyle)]
    assert mixers and all(name.startswith('backbone.') for name in mixers)
    norms = [name for name, m in style.backbone.named_modules()
             if isinstance(m, (torch.nn.LayerNorm, torch.nn.modules.batchnorm._BatchNorm,
                               torch.nn.GroupNorm))]
    assert sorted(mixers) == sorted(f'backbone.{name}.style' for name in norms)
    style.eval()
    x = torch.randn(1, 3, 64, 64)
    torch.testing.assert_close(style.backbone(x), base.eval().backbone(x), rtol=0, atol=0)


def test_resume_restores_the_style_draws(tmp_path):
    """A checkpoint carries MixStyle's generator state (a plain dict, loadable with
    weights_only); a resumed run draws on from it, not again from the seed."""
    from types import SimpleNamespace

    from domino_seg.engine.rng_state_hook import RngStateHook

    def run(generator):
        shared = [MixStyle(generator=generator), MixStyle(generator=generator)]
        return SimpleNamespace(model=torch.nn.Sequential(*shared), iter=1,
                               train_loop=SimpleNamespace(dataloader_iterator=iter([])))

    trained = run(style_generator(0))
    trained.model[0].generator.random()  # a step before the checkpoint
    checkpoint = {'meta': {}}
    RngStateHook().before_save_checkpoint(trained, checkpoint)
    style = checkpoint['meta']['rng_state']['style']
    torch.save(style, tmp_path / 'style.pth')  # plain values: no global to allow
    assert torch.load(tmp_path / 'style.pth', weights_only=True) == style
    expected = [trained.model[1].generator.random() for _ in range(3)]

    resumed, hook = run(style_generator(0)), RngStateHook()
    hook.after_load_checkpoint(resumed, checkpoint)
    hook.before_train(resumed)
    assert [resumed.model[0].generator.random() for _ in range(3)] == expected
