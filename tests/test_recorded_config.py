"""The config.yaml beside a checkpoint (a run folder anyone may have made) is read as data by
one helper, config.recorded_config, for every tool that reads it: an unusable file is one
paragraph naming it (exit 2), and nothing in it is resolved with this machine's resolvers."""
import re
from pathlib import Path

import pytest
from omegaconf import OmegaConf

import domino_seg
from domino_seg.apis.deploy import deploy
from domino_seg.apis.inference import checkpoint_config
from domino_seg.apis.run import with_checkpoint_model
from domino_seg.config import recorded_config, recorded_config_path
from domino_seg.engine.resume import check_same_config
from domino_seg.errors import ConfigError
from domino_seg.io import RECORDED_CONFIG

SECRET = 'hunter2-of-the-reader'
OVERRIDES = ['model=segformer_mit_tiny', 'domino=head', 'domain=text', 'data.img_scale=[128,64]']


@pytest.fixture(scope='module')
def recorded_text(tmp_path_factory):
    """The config.yaml text tools/train.py records (resolved) for OVERRIDES."""
    cfg = domino_seg.compose(OVERRIDES + [f'work_dir={tmp_path_factory.mktemp("run")}'])
    return OmegaConf.to_yaml(OmegaConf.to_container(cfg, resolve=True))


def run_folder(tmp_path, text):
    """A run folder holding ``text`` as its config.yaml and a checkpoint file; the checkpoint."""
    folder = tmp_path / 'someone_elses_run'
    folder.mkdir()
    (folder / 'config.yaml').write_text(text)
    (folder / 'iter_1.pth').write_bytes(b'weights, never read: the config comes first')
    return str(folder / 'iter_1.pth')


def test_a_recorded_config_is_read_as_written(tmp_path, recorded_text):
    checkpoint = run_folder(tmp_path, recorded_text)
    assert recorded_config_path(checkpoint) == str(tmp_path / 'someone_elses_run/config.yaml')
    loaded = recorded_config(checkpoint)
    assert OmegaConf.to_yaml(loaded) == recorded_text
    assert recorded_config(str(tmp_path / 'x.pth'), required=False) is None
    with pytest.raises(ConfigError, match=r"checkpoint='.*x.pth': no config.yaml beside it"):
        recorded_config(str(tmp_path / 'x.pth'))


def interpolated(text):
    return text.replace('name: segformer_mit_tiny', 'name: ${oc.env:DOMINO_TEST_SECRET}')


def python_tag(text):
    return text + 'payload: !!python/object/apply:os.system ["echo pwned"]\n'


def a_list(text):
    return '- model\n- domino\n'


def empty(text):
    return ''


def not_yaml(text):
    return 'model: [unclosed\n'


def without_domain(text):
    recorded = OmegaConf.to_container(OmegaConf.create(text))
    return OmegaConf.to_yaml({k: v for k, v in recorded.items() if k != 'domain'})


def group_not_a_mapping(text):
    return text.replace('\ndomino:\n', '\ndomino: head\nold_domino:\n')


def wrong_type(text):
    return text.replace('  scope: head', '  scope: [head]')


def small_img_scale(text):  # the Segmenter and deploy read data.img_scale
    return text.replace('  img_scale:\n  - 128\n  - 64\n', '  img_scale: 5\n')


CASES = {
    interpolated: 'holds interpolations (${...}) at model.name: tools/train.py records its '
                  'config resolved',
    python_tag: "is not a domino-seg run config: could not determine a constructor for the "
                "tag 'tag:yaml.org,2002:python/object/apply:os.system'",
    a_list: 'is not a domino-seg run config: it holds a ListConfig, not a mapping of config '
            'groups',
    empty: 'has no model, domino, domain section; it is not a domino-seg run config',
    not_yaml: 'is not a domino-seg run config: while parsing a flow sequence',
    without_domain: 'has no domain section; it is not a domino-seg run config',
    group_not_a_mapping: 'has no domino section',
    wrong_type: 'is not a config this domino-seg can read: domino.scope takes a string, got '
                "['head']. Restore",
    small_img_scale: 'is not a config this domino-seg can read: data.img_scale=5 is out of '
                     'range: data.img_scale takes two integers >= 32',
}


@pytest.mark.parametrize('damage', list(CASES), ids=lambda f: f.__name__)
def test_an_unusable_recorded_config_is_one_paragraph(tmp_path, recorded_text, damage,
                                                      monkeypatch):
    monkeypatch.setenv('DOMINO_TEST_SECRET', SECRET)
    checkpoint = run_folder(tmp_path, damage(recorded_text))
    with pytest.raises(ConfigError) as err:
        recorded_config(checkpoint)
    message = str(err.value)
    assert message.startswith(recorded_config_path(checkpoint)) and CASES[damage] in message
    assert 'Restore the config.yaml tools/train.py wrote in that run' in message
    assert '\n' not in message and SECRET not in message


def test_a_config_with_an_undecodable_byte_is_one_paragraph(tmp_path, recorded_text):
    checkpoint = run_folder(tmp_path, recorded_text)
    with open(recorded_config_path(checkpoint), 'ab') as f:
        f.write(b'note: \xff\xfe\n')
    with pytest.raises(ConfigError, match="config.yaml .beside checkpoint=.*. is not a "
                                          "domino-seg run config: 'utf-8' codec can't decode"):
        recorded_config(checkpoint)


@pytest.mark.parametrize('reader', ['infer', 'test', 'deploy', 'resume'])
def test_every_reader_refuses_an_environment_interpolation(tmp_path, recorded_text, reader,
                                                           monkeypatch, fails, capsys):
    """tools/infer.py (the Segmenter), tools/test.py, tools/deploy.py and resume read the
    recorded config through the one helper: the reader's environment never reaches the
    console (nor infer.json, which holds what the Segmenter read)."""
    monkeypatch.setenv('DOMINO_TEST_SECRET', SECRET)
    checkpoint = run_folder(tmp_path, interpolated(recorded_text))
    jobs = {
        'infer': lambda: checkpoint_config(domino_seg.compose(['work_dir=.']), checkpoint),
        'test': lambda: with_checkpoint_model(
            domino_seg.compose([f'checkpoint={checkpoint}'], 'test'), []),
        'deploy': lambda: deploy(domino_seg.compose(
            [f'checkpoint={checkpoint}', 'condition=fog'], 'deploy'), []),
        'resume': lambda: check_same_config(domino_seg.compose(OVERRIDES), checkpoint),
    }
    err = fails(jobs[reader])
    assert f'{recorded_config_path(checkpoint)} holds interpolations' in err
    out = capsys.readouterr()
    assert SECRET not in err + out.out + out.err


def test_resume_reads_a_sound_record_as_before(tmp_path, recorded_text):
    check_same_config(domino_seg.compose(OVERRIDES), run_folder(tmp_path, recorded_text))


def test_the_run_config_file_is_named_in_one_place():
    """Whoever reads or writes a run's config.yaml (the tools, infer's and compare's output
    checks, the hook that records it) finds it through io.RECORDED_CONFIG and
    recorded_config_path, so no reader looks for it where the run did not write it."""
    root = Path(domino_seg.__file__).resolve().parents[1]
    naming = sorted(str(path.relative_to(root)) for folder in ('domino_seg', 'tools')
                    for path in (root / folder).rglob('*.py')
                    if re.search(r"""['"]config\.yaml['"]""", path.read_text()))
    assert naming == ['domino_seg/io.py']
    assert recorded_config_path('runs/a/iter_8.pth') == \
        str(Path('runs/a').resolve() / RECORDED_CONFIG)
