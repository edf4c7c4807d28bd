"""The leave-one-condition-out presets, configs/exp/<protocol>_loo_<condition>.yaml, written
from one file per protocol, configs/exp/_loo_<protocol>.yaml (Hydra cannot drop one entry
from a list, and an interpolation would show as ``${...}`` in ``--cfg job``): the protocols
differ in one place. ``python -m domino_seg.presets`` rewrites them; tests/test_config.py
checks that they are current."""
from __future__ import annotations

from pathlib import Path

import yaml

from domino_seg.config_files import CONFIG_DIR
from domino_seg.io import atomic_write_bytes


def loo_presets(config_dir: Path = CONFIG_DIR) -> dict[Path, str]:
    """Each leave-one-out preset's path -> its text, from the protocol files."""
    presets = {}
    for spec_path in sorted((config_dir / 'exp').glob('_loo_*.yaml')):
        spec = yaml.safe_load(spec_path.read_text())
        for held_out in spec['conditions']:
            name = f"{spec['name']}_{held_out}"
            lines = ['# @package _global_',
                     *(f'# {line}' for line in spec['about'].format(held_out=held_out)
                       .splitlines()),
                     f'# (written from exp/{spec_path.name}: edit that file, then python -m '
                     'domino_seg.presets)',
                     'defaults:', f"  - override /data: {spec['data']}", '',
                     f'exp_name: {name}', 'data:', '  train_sources:',
                     "    - {kind: cityscapes, root: '${data.cityscapes_root}', split: train}"]
            lines += [f"    - {{kind: acdc, root: '${{data.acdc_root}}', condition: {other}, "
                      'split: train}' for other in spec['conditions'] if other != held_out]
            lines.append(f"  eval_conditions: [{', '.join(['cityscapes', *spec['conditions']])}]")
            presets[config_dir / 'exp' / f'{name}.yaml'] = '\n'.join(lines) + '\n'
    return presets


if __name__ == '__main__':
    for path, text in loo_presets().items():
        if not path.is_file() or path.read_text() != text:
            atomic_write_bytes(str(path), text.encode())
            print(f'wrote {path}')
