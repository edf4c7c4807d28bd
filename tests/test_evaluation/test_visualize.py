"""Visualization grids and their checks (tools/test.py ... visualize=N; the end-to-end run is
in test_submission.py)."""

import numpy as np
from mmseg.datasets import CityscapesDataset

from domino_seg.evaluation.visualize import colorize, grid_figure, pick_samples

META = CityscapesDataset.METAINFO


def test_colorize_uses_the_palette_and_black_for_ignore():
    rgb = colorize(np.array([[0, 13, 255]], np.uint8), META['palette'])
    assert rgb.tolist() == [[META['palette'][0], META['palette'][13], [0, 0, 0]]]


def test_grid_has_one_panel_per_sample_and_column_and_a_legend_of_present_classes():
    label = np.zeros((8, 16), np.uint8)
    label[:, 8:] = 10                                       # road | sky
    pred = label.copy()
    pred[:4] = 13                                           # car
    rows = [dict(image=np.zeros((8, 16, 3), np.uint8), labels=[label, pred, pred], name=f's{i}')
            for i in range(2)]
    titles = ['image', 'ground truth', 'prediction', 'compare']
    fig = grid_figure(rows, titles, META['classes'], META['palette'], suptitle='fog')
    assert len(fig.axes) == 8
    assert [ax.get_title() for ax in fig.axes[:4]] == titles
    assert [fig.axes[i].get_xlabel() for i in (0, 4)] == ['s0', 's1']
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ['road', 'sky', 'car']
    assert fig.axes[2].images[0].get_array()[0, 0].tolist() == META['palette'][13]


class FakeDataset:
    conditions = ['cityscapes'] * 5 + ['fog'] * 2

    def __len__(self):
        return len(self.conditions)

    def get_data_info(self, index):
        return dict(condition=self.conditions[index])


def test_samples_are_spread_over_each_condition():
    assert pick_samples(FakeDataset(), 3) == {'cityscapes': [0, 2, 4], 'fog': [5, 6]}
    assert pick_samples(FakeDataset(), 1) == {'cityscapes': [0], 'fog': [5]}


def test_compare_checkpoint_without_visualize_fails_clearly(tiny_overrides, tmp_path,
                                                           tool_fails):
    ckpt = tmp_path / 'x.pth'
    ckpt.write_bytes(b'')
    assert 'add visualize=N' in tool_fails('test.py', tiny_overrides + [
        f'checkpoint={ckpt}', f'compare_checkpoint={ckpt}'], tmp_path)
