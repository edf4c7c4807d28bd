"""Prompt-swap evaluation, ``tools/test.py checkpoint=PATH swap=[...]``: does a Domino model use
what its domain embedding means? After the usual test (``metrics.json``: each image with its own
condition's embedding), the checkpoint is scored again once per entry with that entry's
embedding in place of every image's own, swapped in the model's data preprocessor (the same
test loop, data and metric). One table: rows = embedding used, columns = evaluated condition
(mIoU), printed and written to ``swap.json``, ``swap.md`` and ``swap.csv`` in the work dir.

An entry is one of

* a prompt-bank condition (``fog``; the dataset's ``cityscapes`` is the bank's ``clear``): its
  text embedding, what the images of that condition get in the usual test;
* ``random`` or ``random:SEED``: a random unit vector, seeded (``random`` = ``random:0``);
* ``mean:A+B`` (two or more bank conditions): the normalised mean of their embeddings;
* ``text:TEXT`` or any other text (``"in a dax"``): a description, embedded as a bank condition
  with that one description is (put into the bank's templates) by the run's text encoder.

Only ``domain=text`` models qualify: there the embedding is the condition's text embedding,
which a swap replaces, and the row of a condition reproduces the usual score on its images.
"""
from __future__ import annotations

import csv
import difflib
import io
import os.path as osp
import re
from dataclasses import dataclass
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf

from domino_seg.conditions import DOMAIN_OF_CONDITION, EVAL_CONDITIONS, run_conditions
from domino_seg.config import scores_labels
from domino_seg.domain import builder as domain_builder
from domino_seg.domain.prompts import PromptBank, load_prompt_bank
from domino_seg.errors import ConfigError
from domino_seg.evaluation.report import markdown_table
from domino_seg.io import atomic_write_bytes, atomic_write_json, save_in_run

FILES = ('swap.json', 'swap.md', 'swap.csv')
OWN = 'own'  # the row of the usual test: each image's own condition
SYNTAX = ('Each entry of swap=[...] is a prompt-bank condition (e.g. fog; cityscapes = clear), '
          'random or random:SEED (a seeded random unit vector), mean:A+B (the normalised mean '
          'of two or more bank conditions), or text:TEXT / any other text (a description '
          'embedded through the bank\'s templates), e.g. swap=[fog,night,"in a dax",random,'
          '"mean:fog+night"].')


@dataclass(frozen=True)
class Entry:
    """One row of the table: ``name`` as given; ``kind`` condition | random | mean | text;
    ``args`` the bank conditions, ``(seed,)`` or ``(text,)``."""

    name: str
    kind: str
    args: tuple

    @property
    def what(self) -> str:
        """The embedding in words (swap.json)."""
        if self.kind == 'condition':
            return f'the prompt-bank condition {self.args[0]}'
        if self.kind == 'random':
            return f'a random unit vector (seed {self.args[0]})'
        if self.kind == 'mean':
            return f'the normalised mean of {" + ".join(self.args)}'
        return f'the description {self.args[0]!r} in the bank\'s templates'

    def embedding(self, generator) -> torch.Tensor:
        """Tensor[D] from the run's DomainPromptGenerator."""
        if self.kind == 'condition':
            return generator.embed_conditions(list(self.args))[0]
        if self.kind == 'mean':
            return F.normalize(generator.embed_conditions(list(self.args)).mean(0), dim=0)
        if self.kind == 'random':
            rng = torch.Generator().manual_seed(self.args[0])
            return F.normalize(torch.randn(generator.embed_dim, generator=rng), dim=0)
        return generator.embed_descriptions(list(self.args))[0]


def _error(entry, problem: str) -> ConfigError:
    return ConfigError(f'swap entry {entry!r}: {problem}. {SYNTAX}')


def _bank_condition(name: str, bank: PromptBank) -> Optional[str]:
    label = DOMAIN_OF_CONDITION.get(name, name)
    return label if label in bank.prompts else None


def parse(entry, bank: PromptBank, conditions: Sequence[str] = EVAL_CONDITIONS) -> Entry:
    """One ``swap=`` entry, checked against the prompt ``bank``; a ConfigError naming it and
    the syntax otherwise. ``conditions``: the run's dataset conditions (a name among them but
    not in the bank is an error, not a one-word description)."""
    if not isinstance(entry, str) or not entry.strip():
        raise _error(entry, 'not a non-empty text')
    name = entry.strip()
    kind, colon, rest = name.partition(':')
    rest = rest.strip()
    if _bank_condition(name, bank):
        return Entry(name, 'condition', (_bank_condition(name, bank),))
    if name == 'random' or (colon and kind == 'random'):
        seed = rest if colon else '0'
        if not re.fullmatch(r'\d+', seed) or int(seed) >= 2 ** 64:
            raise _error(entry, f'the seed {seed!r} is not an integer in 0..2**64-1')
        return Entry(name, 'random', (int(seed),))
    if colon and kind == 'mean':
        parts = [part.strip() for part in rest.split('+')]
        if len(parts) < 2 or not all(parts):
            raise _error(entry, 'mean: takes two or more conditions joined by +, e.g. '
                                'mean:fog+night')
        unknown = [part for part in parts if not _bank_condition(part, bank)]
        if unknown:
            verb = 'is not a condition' if len(unknown) == 1 else 'are not conditions'
            raise _error(entry, f'{", ".join(unknown)} {verb} of the prompt bank {bank.source} '
                                f'(its conditions: {", ".join(bank.conditions)})')
        return Entry(name, 'mean', tuple(_bank_condition(part, bank) for part in parts))
    if colon and kind == 'text':
        if not rest:
            raise _error(entry, 'text: is followed by no text')
        return Entry(name, 'text', (rest,))
    if colon and re.fullmatch(r'[\w-]+', kind):
        raise _error(entry, f'{kind}: is not a kind of entry (random:, mean:, text:); for a '
                            f'description with a colon write text:{name}')
    if name in conditions:  # e.g. fog, with a bank of other conditions
        raise _error(entry, f'a condition of the datasets, but not of the prompt bank '
                            f'{bank.source} (its conditions: {", ".join(bank.conditions)}); '
                            f'for the one-word description, write text:{name}')
    close = difflib.get_close_matches(name, [*bank.conditions, *DOMAIN_OF_CONDITION], n=1,
                                      cutoff=0.6) if re.fullmatch(r'[\w-]+', name) else []
    if close:  # a misspelt condition would otherwise be scored as a description
        raise _error(entry, f'not a condition of the prompt bank {bank.source}; did you mean '
                            f'{close[0]}? (for the one-word description, write text:{name})')
    return Entry(name, 'text', (name,))


def check(cfg: DictConfig) -> list[Entry]:
    """The ``swap=`` entries of a tools/test.py config, checked before anything is built: a
    Domino model with ``domain=text``, a scoring test that writes no predictions, a valid
    syntax for each entry against the prompt bank, and no swap outputs in the work dir yet."""
    entries = OmegaConf.to_container(cfg.swap) if OmegaConf.is_config(cfg.swap) else cfg.swap
    if cfg.domino.scope == 'none':
        raise ConfigError(
            'swap= replaces the domain embedding that the Domino layers read, but this model '
            'has no Domino layers (domino=none, the baseline): there is nothing to swap. Pass '
            'the checkpoint of a domino=head|backbone|full, domain=text run, or leave swap= out.')
    if cfg.domain.mode != 'text':
        source = {'zero_shot': "CLIP's mix of the bank's conditions, weighted by each image",
                  'image': "each image's CLIP image embedding",
                  'onehot': "the condition's one-hot code, no text"}.get(cfg.domain.mode, 'none')
        raise ConfigError(
            'swap= needs a domain=text model, whose embedding is the condition\'s prompt-bank '
            f'text embedding, which a swap replaces; this one is domain={cfg.domain.mode} '
            f'(its embedding: {source}), so no row of swapped text embeddings could reproduce '
            'its own score. Leave swap= out, or evaluate a domain=text run.')
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f'swap={entries!r} names no embedding. {SYNTAX}')
    if not scores_labels(cfg):
        raise ConfigError('swap= compares scores, but evaluate=false scores nothing: remove '
                          'evaluate=false (swap= needs a labelled split).')
    for key in ('save_predictions', 'submission'):
        if cfg.get(key):
            raise ConfigError(
                f'swap= evaluates the checkpoint once per entry, and {key}= would write the '
                'predictions of every pass over each other: run tools/test.py without swap= '
                f'for {key}=, and with swap= (without {key}=) for the table.')
    domain_builder.check_domain(cfg.domain)
    bank = load_prompt_bank(cfg.domain.prompt_bank)
    parsed = [parse(entry, bank, run_conditions(cfg.data)) for entry in entries]
    names = [entry.name for entry in parsed]
    repeated = sorted({name for name in names if names.count(name) > 1 or name == OWN})
    if repeated:
        raise _error(repeated[0], 'given twice' if repeated[0] != OWN else
                     f'{OWN!r} is the row of the usual test; write text:{OWN} for the word')
    existing = [osp.join(cfg.work_dir, name) for name in FILES
                if osp.exists(osp.join(cfg.work_dir, name))]
    if existing:
        raise ConfigError(f'{existing[0]} exists: the work dir holds an earlier swap '
                          'evaluation, which this one would overwrite. Leave work_dir= out '
                          '(each test gets a new folder) or choose another work_dir=.')
    return parsed


def evaluate(cfg: DictConfig, runner, entries: list[Entry], report: dict) -> dict:
    """After ``runner.test()`` (whose ``report`` is the usual one), one pass of the runner's
    test loop per entry with its embedding swapped in; the table printed and written (main
    process). Returns what ``swap.json`` holds."""
    from mmengine.dist import is_main_process
    from mmengine.model import is_model_wrapper
    model = runner.model.module if is_model_wrapper(runner.model) else runner.model
    preprocessor = model.data_preprocessor
    generator = preprocessor.embedder.generator(next(model.parameters()).device)
    rows = [dict(embedding=OWN, what="each image's own condition (metrics.json)",
                 mIoU={c: row['mIoU'] for c, row in report.get('conditions', {}).items()})]
    try:
        for i, entry in enumerate(entries, 1):
            preprocessor.swapped = entry.embedding(generator)
            runner.logger.info(f'swap {i}/{len(entries)}: every image embedded as '
                               f'{entry.name!r}, {entry.what}')
            runner.test_loop.run()
            scores = runner.test_evaluator.metrics[0].report or {'conditions': {}}
            rows.append(dict(embedding=entry.name, what=entry.what,
                             mIoU={c: row['mIoU'] for c, row in scores['conditions'].items()}))
    finally:
        preprocessor.swapped = None
    payload = dict(checkpoint=cfg.checkpoint, metric='mIoU', conditions=list(rows[0]['mIoU']),
                   rows=rows, domain=domain_builder.describe(cfg.domain),
                   prompt_bank=generator.bank.source)
    if is_main_process():
        _write(cfg.work_dir, payload, runner.logger)
    return payload


def _cells(payload: dict, fmt) -> list[list]:
    return [[row['embedding'], *(fmt(row['mIoU'].get(c)) for c in payload['conditions'])]
            for row in payload['rows']]


def _write(work_dir: str, payload: dict, logger) -> None:
    """The table on the console and in the log, and the three files (each written
    atomically; a failure is a clear error and leaves no part of a file)."""
    header = ['embedding', *payload['conditions']]
    text = markdown_table(header, _cells(payload, lambda v: '-' if v is None else f'{v:.2f}'))
    table = io.StringIO()
    csv.writer(table, lineterminator='\n').writerows(
        [header, *_cells(payload, lambda v: '' if v is None else repr(v))])
    for name, write in (('swap.md', lambda p: atomic_write_bytes(p, (text + '\n').encode())),
                        ('swap.csv', lambda p: atomic_write_bytes(p, table.getvalue().encode())),
                        ('swap.json', lambda p: atomic_write_json(p, payload))):
        path = osp.join(work_dir, name)
        save_in_run(path, lambda: write(path), 'run tools/test.py again.')
    logger.info(f'\nPrompt swap: {payload["metric"]} (%) per evaluated condition (columns) with '
                f'each embedding in place of every image\'s own (rows); {OWN} = the usual '
                f'test\n{text}\nwritten to {osp.join(work_dir, "swap.json")} (.md, .csv)')
