"""Cosine similarity of the domain embeddings a run's conditions get in ``domain=text`` mode,
computed the way training computes them (the composed config's prompt bank and encoder):

    python docs/results/prompt_cosines.py [overrides, default: domain/text_encoder=minilm]

e.g. ``+exp=synthetic_compose domain/text_encoder=minilm`` for the attribute bank. The figures
docs/results.md quotes are printed by this script (docs/results/sweep.sh runs it).
"""
import os
import sys

import torch

import domino_seg
from domino_seg.domain.builder import generator_cfg
from domino_seg.domain.clip_generator import DomainPromptGenerator


def main(overrides: list) -> None:
    cfg = domino_seg.compose(['domain=text', *(overrides or ['domain/text_encoder=minilm'])])
    generator = DomainPromptGenerator(**generator_cfg(cfg.domain))
    names = generator.conditions
    embeddings = torch.nn.functional.normalize(generator.condition_embeddings.float(), dim=-1)
    cosines = embeddings @ embeddings.T
    encoder = cfg.domain.text_encoder.name if cfg.domain.get('text_encoder') else 'CLIP'
    bank = os.path.relpath(generator.bank.source)
    print(f'cosine of the condition embeddings ({encoder}, {bank})')
    width = max(len(name) for name in names) + 2
    print(' ' * width + ''.join(f'{name:>{width}}' for name in names))
    for name, row in zip(names, cosines.tolist()):
        print(f'{name:<{width}}' + ''.join(f'{value:>{width}.2f}' for value in row))


if __name__ == '__main__':
    main(sys.argv[1:])
