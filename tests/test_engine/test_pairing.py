"""Paired runs: seed k of a Domino row and seed k of the baseline (domino=none), built and
trained as tools/train.py does, start from the same weights, draw the same batches with the same
augmentations and the same dropout, and compute the same step-0 outputs, so a per-seed
difference measures Domino alone."""
import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.hooks import Hook
from mmengine.registry import DATASETS

import domino_seg
from domino_seg.engine.rng_state_hook import get_rng_state
from domino_seg.engine.runner import DominoRunner

STEPS = 2  # batches compared
PAIRS = {  # Domino run -> its data loading, shared with the baseline it is paired with
    'full-text': (['domino=full', 'domain=text'], 'data.num_workers=0'),
    'head-zero_shot': (['domino=head', 'domain=zero_shot'], 'data.num_workers=2'),
}


class Recorder(Hook):
    """What a run starts from: the initialised state dict and global generator, the first
    STEPS batches, step 0's logits (eval mode, on a copy of the batch) and losses; then it
    stops the run (no evaluation, no checkpoint)."""

    priority = 'VERY_LOW'

    def before_train(self, runner) -> None:
        self.model = runner.model
        self.state = {k: v.clone() for k, v in runner.model.state_dict().items()}
        self.rng = get_rng_state()
        self.batches, self.losses = [], []

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        samples = data_batch['data_samples']
        self.batches.append(dict(
            ids=[(s.img_path, s.condition, s.flip) for s in samples],
            images=[image.clone() for image in data_batch['inputs']],
            labels=[s.gt_sem_seg.data.clone() for s in samples]))
        if batch_idx == 0:
            model = runner.model
            with torch.no_grad():
                data = model.data_preprocessor(copy.deepcopy(data_batch), True)
                self.logits = model.eval()(**data, mode='tensor')
            model.train()

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self.losses.append(outputs)
        if batch_idx == STEPS - 1:
            runner.train_loop.stop_training = True


def train(overrides: list) -> Recorder:
    cfg = domino_seg.compose(overrides)
    runner = DominoRunner.from_cfg(domino_seg.to_mmengine(cfg))
    recorder = Recorder()
    runner.register_hook(recorder)
    runner.train()
    return recorder


def same_rng_state(a: dict, b: dict) -> bool:
    """:func:`get_rng_state` dicts equal: python's, numpy's and torch's generators."""
    return a['python'] == b['python'] and torch.equal(a['torch'], b['torch']) and all(
        np.array_equal(x, y) for x, y in zip(a['numpy'], b['numpy']))


def assert_shares_values(model, state: dict, baseline_state: dict) -> None:
    """Each entry of the baseline's state dict, under the Domino ``model``'s name for it (as
    load_from renames it), is bit-identical in the Domino ``state``; the others are Domino's."""
    shared = model.checkpoint_state_dict(baseline_state)
    assert set(state) - set(shared) == model.checkpoint_keys_may_miss()
    for key, value in shared.items():
        assert torch.equal(state[key], value), key


@pytest.fixture(scope='module')
def runs(tiny_benchmark, tiny_overrides_at, tmp_path_factory):
    """Per pair: the baseline's and the Domino run's records, seed 1, with weather sampled at
    load time and colour jitter."""
    tmp = tmp_path_factory.mktemp('pairing')
    common = tiny_overrides_at(tiny_benchmark, tmp / 'work_dirs') + [
        'seed=1', 'schedule.max_iters=10', 'schedule.val_interval=10',
        'data.train_weather=[fog,night]', 'data.photometric_distortion=true',
        f'paths.embedding_cache={tmp / "cache"}']
    records = {}
    for name, (domino, workers) in PAIRS.items():
        records[name] = tuple(train(common + [workers, f'work_dir={tmp / name / run}', *extra])
                              for run, extra in (('baseline', []), ('domino', domino)))
    return records


@pytest.mark.slow
@pytest.mark.parametrize('pair', PAIRS)
def test_paired_runs_share_weights_batches_and_step_0(runs, pair):
    baseline, domino = runs[pair]
    assert_shares_values(domino.model, domino.state, baseline.state)
    assert same_rng_state(domino.rng, baseline.rng)
    # the same samples, crops, flips, weather and colour jitter
    assert len(domino.batches) == len(baseline.batches) == STEPS
    for ours, theirs in zip(domino.batches, baseline.batches):
        assert ours['ids'] == theirs['ids']
        for key in ('images', 'labels'):
            assert all(torch.equal(a, b) for a, b in zip(ours[key], theirs[key]))
    assert len({condition for batch in baseline.batches for _, condition, _ in batch['ids']}) > 1
    # Domino starts as the identity: the same logits, and the same losses under the same dropout
    torch.testing.assert_close(domino.logits, baseline.logits, rtol=1e-5, atol=1e-5)
    for key in ('loss', 'decode.loss_ce'):
        torch.testing.assert_close(domino.losses[0][key], baseline.losses[0][key],
                                   rtol=1e-6, atol=1e-6)


# every model config (dinov2_vitb14 differs from vits14 in width only)
MODEL_CONFIGS = sorted(path.stem for path in (Path(__file__).parents[2] / 'configs/model')
                       .glob('*.yaml') if path.stem != 'dinov2_vitb14_upernet')


@pytest.mark.parametrize('model', MODEL_CONFIGS)
def test_every_model_config_pairs_with_its_baseline(tiny_overrides, tiny_model, model):
    """domino=full (norms in every part) shares each baseline value and the random stream,
    whatever the backbone's init walks (open_clip, DINOv2, ResNet's zeroed residual norms)."""
    built, states = [], []
    for domino in (['domino=none'], ['domino=full', 'domain=text']):
        torch.manual_seed(5)
        built.append(domino_seg.build_segmentor(
            domino_seg.compose(tiny_overrides + [f'model={model}', *tiny_model[model],
                                                 *domino])))
        states.append(get_rng_state())
    baseline, domino = built
    assert same_rng_state(*states)
    assert_shares_values(domino, domino.state_dict(), baseline.state_dict())


@pytest.mark.parametrize('domain', [['domain=text'], ['domain=text', 'domain/text_encoder=minilm'],
                                    ['domain=zero_shot'], ['domain=image']])
def test_building_the_domain_encoder_draws_no_random_number(tiny_overrides, tmp_path, domain,
                                                           embed_samples):
    """The domain encoder, built when the first batch is embedded (in the training process),
    moves none of the generators the baseline's run also uses: data augmentation (with
    data.num_workers=0), dropout."""
    cfg = domino_seg.compose(tiny_overrides + ['domino=head', *domain,
                                               f'paths.embedding_cache={tmp_path}'])
    dataset = DATASETS.build(domino_seg.to_mmengine(cfg).train_dataloader.dataset)
    samples = [dataset[i] for i in range(2)]
    model = domino_seg.build_segmentor(cfg)
    before = get_rng_state()
    embed_samples(model, samples)
    assert model.data_preprocessor.embedder._generator is not None  # built by that batch
    assert same_rng_state(get_rng_state(), before)
