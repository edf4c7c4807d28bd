"""Generate the built-in synthetic weather benchmark (Cityscapes + ACDC layouts).

    python tools/make_synthetic.py out=data/synthetic num_train=300 num_val=40 height=128 width=256
"""
import hydra
from hydra.utils import to_absolute_path
from omegaconf import DictConfig

import domino_seg  # (compat fixes and registration)
from domino_seg.data.synthetic import generated_folder, write_benchmark
from domino_seg.engine.run import checked, run_cli, run_hydra
from domino_seg.errors import ConfigError, DataError

domino_seg.quiet()  # upstream warnings that repeat ours: off (console.py)


def make(cfg: DictConfig) -> None:
    try:
        out = write_benchmark(to_absolute_path(cfg.out), num_train=cfg.num_train,
                              num_val=cfg.num_val, height=cfg.height, width=cfg.width,
                              seed=cfg.seed, conditions=tuple(cfg.conditions),
                              val_only=tuple(cfg.val_only), generated=tuple(cfg.generated),
                              progress=cfg.progress, overwrite=cfg.overwrite,
                              workers=cfg.workers)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    except DataError as err:
        raise DataError(f'out={cfg.out}: {err}') from None
    trained = [c for c in cfg.conditions if c not in cfg.val_only]
    lines = [f'  cityscapes/  clear: {cfg.num_train} train, {cfg.num_val} val']
    lines += [f'  acdc/        {", ".join(trained)}: {cfg.num_train} train, {cfg.num_val} val '
              'each'] if trained else []
    lines += [f'  acdc/        {", ".join(cfg.val_only)}: {cfg.num_val} val each (held out '
              'from training)'] if cfg.val_only else []
    lines += [f'  {generated_folder(out, c).relative_to(out)}/  {c}: {cfg.num_train} train '
              '(labels: cityscapes/gtFine/train)' for c in cfg.generated]
    print(f'Synthetic benchmark in {out}:\n' + '\n'.join(lines) +
          f'\n  {cfg.height}x{cfg.width} px, seed {cfg.seed}')


@hydra.main(config_path='../configs', config_name='make_synthetic', version_base='1.3')
def main(cfg: DictConfig) -> None:
    run_cli(lambda: make(checked(cfg)))


if __name__ == '__main__':
    run_hydra(main)
