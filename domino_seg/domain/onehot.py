"""One-hot condition codes: conditional normalisation without language (``domain=onehot``).

The control for the question whether the *language* of the prompts helps Domino: the same
condition labels, the same data path and Domino layers as ``domain=text``, but each condition's
embedding is a code that says which condition it is and nothing about what it means.

* width = the number of the run's seen (training) conditions, not of the prompt bank's: a
  bank condition no training sample carries would be an input that no gradient ever reaches;
* a seen condition -> its one-hot vector, column ``k`` for the ``k``-th seen condition (the
  order of ``domain.seen``, which the run's config records);
* any other condition of the bank (unseen) -> the mean of the seen codes, ``1/K`` in every
  entry, not renormalised: Domino's first Linear layer then gets the mean of its inputs for
  the seen conditions, the centroid of what training saw, rather than a point beyond it.

The bank only names the conditions (its prompts are not read); the seen conditions are
recorded in the run's config (``domain.seen``), so a checkpoint keeps its codes whatever
conditions a later tools/test.py run evaluates.
"""
from __future__ import annotations

from typing import Sequence

import torch


class OneHotCodes:
    """The codes of a prompt bank's ``conditions`` given the ``seen`` ones (bank names).

    Attributes:
        codes: float32 Tensor[len(conditions), K], a row per bank condition.
        seen: the seen conditions, column ``k`` is ``seen[k]`` (duplicates dropped).
    """

    has_language_meaning = False  # a code names a condition; nothing in it reads any word

    def __init__(self, conditions: Sequence[str], seen: Sequence[str]):
        unknown = [c for c in seen if c not in conditions]
        if unknown or not seen:
            raise ValueError(f'one-hot codes need seen conditions of the prompt bank '
                             f'({list(conditions)}), got {list(seen)}')
        self.seen = list(dict.fromkeys(seen))
        self.embed_dim = len(self.seen)
        eye = torch.eye(self.embed_dim)
        mean = eye.mean(0)
        self.codes = torch.stack([eye[self.seen.index(c)] if c in self.seen else mean
                                  for c in conditions])

    def encode_text(self, prompts: Sequence[str]) -> torch.Tensor:
        raise ValueError('domain=onehot codes name the prompt bank\'s conditions; they embed '
                         f'no text (asked for {list(prompts)[:3]}). Use a bank condition.')
