"""What a model does in each condition: PNG grids of image, ground truth and predictions
(``tools/test.py ... visualize=N [compare_checkpoint=PATH]``; the checks and the model compared
with are in :mod:`domino_seg.apis.visualize`)."""
from __future__ import annotations

import os.path as osp
from typing import Optional, Sequence

import mmcv
import numpy as np
import torch
from tqdm import tqdm

from domino_seg.errors import ConfigError
from domino_seg.evaluation.report import save_figure

IGNORE_COLOR = (0, 0, 0)


def colorize(label: np.ndarray, palette: Sequence[Sequence[int]]) -> np.ndarray:
    """trainIds -> RGB with the dataset palette; ignore (255) and unknown ids black."""
    lut = np.zeros((256, 3), np.uint8)
    lut[:] = IGNORE_COLOR
    lut[:len(palette)] = palette
    return lut[label.astype(np.uint8)]


def grid_figure(rows: Sequence[dict], titles: Sequence[str], classes: Sequence[str],
                palette: Sequence[Sequence[int]], suptitle: str = ''):
    """One row per sample: its RGB ``image`` then each label map in ``labels`` (same order
    as ``titles[1:]``); a legend names the classes that appear, in the dataset's colours."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    height, width = rows[0]['image'].shape[:2]
    panel_w = 3.2
    panel_h = panel_w * height / width + 0.25
    fig = Figure(figsize=(panel_w * len(titles), panel_h * len(rows) + 1.0),
                 layout='constrained')
    axes = fig.subplots(len(rows), len(titles), squeeze=False)
    present = set()
    for r, row in enumerate(rows):
        panels = [row['image']] + [colorize(label, palette) for label in row['labels']]
        for label in row['labels']:
            present.update(np.unique(label).tolist())
        for c, panel in enumerate(panels):
            ax = axes[r, c]
            ax.imshow(panel, interpolation='nearest')
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(titles[c], fontsize=9)
        axes[r, 0].set_xlabel(row.get('name', ''), fontsize=7)
    handles = [Patch(color=np.asarray(palette[i]) / 255, label=classes[i])
               for i in sorted(present) if i < len(classes)]
    if present - set(range(len(classes))):
        handles.append(Patch(color=np.asarray(IGNORE_COLOR) / 255, label='ignore'))
    fig.legend(handles=handles, loc='outside lower center', ncol=min(len(handles), 8),
               fontsize=7, frameon=False)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    return fig


def pick_samples(dataset, num: int) -> dict[str, list[int]]:
    """``num`` evenly spaced sample indices per condition (all of them if fewer)."""
    by_condition: dict[str, list[int]] = {}
    for index in range(len(dataset)):
        by_condition.setdefault(dataset.get_data_info(index)['condition'], []).append(index)
    picked = {}
    for condition, indices in by_condition.items():
        spots = np.linspace(0, len(indices) - 1, min(num, len(indices))).round().astype(int)
        picked[condition] = [indices[i] for i in dict.fromkeys(spots.tolist())]
    return picked


@torch.no_grad()
def predict(model, dataset, index: int):
    """The model's data sample for one dataset item (through the dataset's own pipeline, so a
    Domino model gets its domain embedding)."""
    from mmengine.dataset import pseudo_collate
    model.eval()
    return model.test_step(pseudo_collate([dataset[index]]))[0]


def check_options(num, compare_checkpoint: Optional[str]) -> None:
    """Fail on a bad ``visualize=`` (samples per condition) or a ``compare_checkpoint`` that
    is not a file or comes without ``visualize``."""
    num = num or 0
    if not isinstance(num, int) or num < 0:
        raise ConfigError(f'visualize={num!r}: give the number of samples per condition, e.g. '
                          'visualize=4 (0 = off).')
    if compare_checkpoint is None:
        return
    if not num:
        raise ConfigError('compare_checkpoint is drawn in the visualization grids only; add '
                          'visualize=N (samples per condition).')
    if not osp.isfile(compare_checkpoint):
        raise ConfigError(f'compare_checkpoint={compare_checkpoint!r} is not a file; pass a .pth '
                          'that tools/train.py wrote.')


def write_grids(model, dataset, out_dir: str, per_condition: int, name: str, with_gt: bool,
                compare: Optional[tuple] = None) -> list[str]:
    """For each condition ``<out_dir>/<condition>.png``: ``per_condition`` samples with image,
    ground truth (``with_gt``; a prediction-only run has no labels), the prediction of
    ``model`` (called ``name``) and, given ``compare=(name, model, dataset)``, that model's
    prediction. Returns the written paths."""
    meta = dataset.metainfo
    models = [(name, model, dataset)] + ([compare] if compare else [])
    titles = ['image', *(['ground truth'] if with_gt else []), f'prediction\n({models[0][0]})']
    titles += [f'compare_checkpoint\n({name})' for name, _, _ in models[1:]]
    picked = pick_samples(dataset, per_condition)
    paths = []
    bar = tqdm(total=sum(map(len, picked.values())) * len(models), desc='visualize',
               unit='pred')
    for condition, indices in picked.items():
        rows = []
        for index in indices:
            samples = []
            for _, net, data in models:  # same data config: the same index is the same image
                samples.append(predict(net, data, index))
                bar.update(1)
            labels = ([samples[0].gt_sem_seg.data[0]] if with_gt else []) + \
                [s.pred_sem_seg.data[0] for s in samples]
            rows.append(dict(image=mmcv.imread(samples[0].img_path, channel_order='rgb'),
                             labels=[label.cpu().numpy() for label in labels],
                             name=osp.basename(samples[0].img_path)))
        fig = grid_figure(rows, titles, meta['classes'], meta['palette'], suptitle=condition)
        path = osp.join(out_dir, f'{condition}.png')
        save_figure(fig, path)
        paths.append(path)
    bar.close()
    return paths
