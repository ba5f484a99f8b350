"""Lesson 09: ImageNet weights that install from PyPI, the timm U-Net, and the day-one model shipped in the package."""
import hashlib, json, os, subprocess, sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from colorize_nbdev.models.pretrained import OFFLINE_WEIGHTS, imagenet_classifier, offline_state, timm_unet
from colorize_nbdev.models.regressor import PretrainedWeightsError
from colorize_nbdev.inference import default_model
from colorize_nbdev.data.samples import sample_photos, sample_dir
from colorize_nbdev.modelfile import load_model, read_model_file

from clitools import one_line_error, run

OFFLINE = {'http_proxy': 'http://127.0.0.1:9', 'https_proxy': 'http://127.0.0.1:9', 'HTTP_PROXY': 'http://127.0.0.1:9',
           'HTTPS_PROXY': 'http://127.0.0.1:9', 'HF_HUB_OFFLINE': '1', 'no_proxy': '', 'NO_PROXY': ''}


def _top1(net, img:np.ndarray)->tuple:
    x = torch.tensor(img).permute(2, 0, 1).float()[None]/255
    x = F.interpolate(x, size=224, mode='bilinear', antialias=True)
    cfg = net.pretrained_cfg
    x = (x - torch.tensor(cfg['mean']).view(1, 3, 1, 1))/torch.tensor(cfg['std']).view(1, 3, 1, 1)
    with torch.no_grad(): p = net(x).softmax(1)[0]
    return int(p.argmax()), float(p.max())


def test_offline_weights_are_imagenet_weights():
    "Not only do they load: the network classifies known photos (ImageNet 281-285 are cats, 967 is espresso)."
    from skimage import data
    net = imagenet_classifier()
    cls, _ = _top1(net, data.chelsea())
    assert 281 <= cls <= 285, cls
    cls, p = _top1(net, data.coffee())
    assert cls == 967 and p > 0.5, (cls, p)
    # and a network with the same tensors paired wrongly would not: random weights do not find the cat
    torch.manual_seed(0)
    import timm
    rnd = timm.create_model('efficientnet_lite0', pretrained=False).eval()
    assert not 281 <= _top1(rnd, data.chelsea())[0] <= 285


def test_unknown_offline_encoder_is_one_clear_error():
    with pytest.raises(PretrainedWeightsError, match='no offline ImageNet weights'): offline_state('resnet50')
    assert 'efficientnet_lite0' in OFFLINE_WEIGHTS


def test_timm_unet_any_size_starts_gray_and_holds_imagenet_encoder():
    m = timm_unet(pretrained=True).eval()
    with torch.no_grad(): y = m(torch.rand(1, 1, 45, 77)*2 - 1)
    assert y.shape == (1, 2, 45, 77) and y.abs().max() == 0   # zero head: the untrained model is the gray baseline
    ref = offline_state()
    enc = m.encoder.state_dict()
    shared = [k for k in enc if k in ref]
    assert len(shared) > 100 and all(torch.equal(enc[k], ref[k]) for k in shared)
    scratch = timm_unet(pretrained=False)
    assert not torch.equal(scratch.encoder.conv_stem.weight, ref['conv_stem.weight'])


def test_online_encoder_without_network_fails_with_one_line():
    "Another timm backbone with pretrained=True downloads; offline that is one clear error naming the offline choice."
    code = ("from colorize_nbdev.models.pretrained import timm_unet\nfrom colorize_nbdev.models.regressor import PretrainedWeightsError\n"
            "try: timm_unet('resnet18', pretrained=True)\nexcept PretrainedWeightsError as e: print('ERR', e)\n")
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=300, env={**os.environ, **OFFLINE})
    assert 'ERR' in r.stdout and 'efficientnet_lite0' in r.stdout, (r.stdout, r.stderr[-2000:])


def test_training_a_timm_unet_moves_it_off_gray(tmp_path):
    "A few steps through the course's training loop: the model file loads and no longer predicts gray."
    from colorize_nbdev.train import fit_colorizer
    l = fit_colorizer('timm_unet', sample_photos()[:8], tmp_path/'t.pth', epochs=2, size=64, bs=4, progress=False, verbose=False,
                      valid_pct=0.25)
    net, cfg = load_model(tmp_path/'t.pth', device='cpu')
    assert cfg['pretrained'] is False and cfg['size'] == 64   # loading never downloads; the training size is recorded
    with torch.no_grad(): y = net(torch.rand(1, 1, 64, 64)*2 - 1)
    assert y.abs().max() > 0


def test_frozen_encoder_keeps_its_imagenet_weights_and_statistics(tmp_path):
    "freeze_encoder: a training run changes the decoder only; the encoder's weights and batch-norm statistics stay ImageNet's."
    from colorize_nbdev.train import fit_colorizer
    l = fit_colorizer('timm_classifier', sample_photos()[:8], tmp_path/'f.pth', epochs=1, size=64, bs=4, progress=False, verbose=False,
                      valid_pct=0.25, arch_kwargs=dict(freeze_encoder=True))
    assert not l.model.encoder.training or not l.model.training   # a frozen encoder stays in eval mode
    l.model.train(); assert l.model.training and not l.model.encoder.training
    ref = offline_state()
    enc = l.model.encoder.state_dict()
    shared = [k for k in enc if k in ref]
    assert len(shared) > 100 and all(torch.equal(enc[k].cpu(), ref[k]) for k in shared)   # running means/vars included
    assert any(p.abs().sum() > 0 for p in l.model.classify.parameters())   # the head learned (it starts at zero)
    net, cfg = load_model(tmp_path/'f.pth', device='cpu')
    assert cfg['freeze_encoder'] is True and all(not p.requires_grad for p in net.encoder.parameters())


# ---------------------------------------------------------------- the day-one model in the package

@pytest.fixture(scope='module')
def card():
    return json.loads(default_model().with_suffix('.json').read_text())


def test_bundled_model_matches_its_card(card):
    p = default_model()
    assert p.is_file() and p.stat().st_size == card['bytes'] < 12e6
    assert hashlib.sha256(p.read_bytes()).hexdigest() == card['sha256']
    obj = read_model_file(p)
    assert obj['arch'] == card['arch'] and card['arch'] in ('timm_classifier', 'cautious_classifier') and obj['config']['pretrained'] is False
    # stored compactly: every weight in fp16 (a cautious model keeps its two caution thresholds in fp32)
    assert {v.dtype for k, v in obj['state_dict'].items() if v.is_floating_point() and k != 'bank_q'} == {torch.float16}
    if card['arch'] == 'cautious_classifier':   # its bank: the photos it trained on (not its validation photos, no test photo)
        assert obj['config']['bank'] == obj['state_dict']['bank'].shape[0] == card['decoding']['bank_photos']
        assert obj['config']['bank'] == card['data']['n_train'] - len(card['temperature']['valid_files'])
    # the split it records: every bundled photo held out, none trained on
    assert {p.name for p in sample_photos()} <= set(card['data']['test_files'])
    assert card['data']['n_train'] + card['data']['n_test'] == 186
    # the registry's entry for it says the same
    from colorize_nbdev.zoo import load_zoo
    e = load_zoo()['dayone']
    assert (e['arch'], e['sha256'], e['bytes'], e['card']) == (card['arch'], card['sha256'], card['bytes'], 'dayone.json')


def test_shipped_temperature_follows_the_cards_rule_on_validation_photos(card):
    "T is chosen from the validation curve by the rule written in the card (or with the whole decoding on a selection run), never from the test photos."
    t = card['temperature']
    assert set(t['valid_files']).isdisjoint(card['data']['test_files'])
    if 'decoding' in card:   # chosen by familiarity_gate.py on a selection run (the next test checks that choice)
        cfg = read_model_file(default_model())['config']
        assert t['chosen'] == card['decoding']['chosen']['T'] == cfg['T'] and 'selection run' in t['rule']
        assert {k: cfg[k] for k in ('debias', 'debias_far', 'T_far')} == {k: card['decoding']['chosen'][k] for k in ('debias', 'debias_far', 'T_far')}
        assert list(cfg['bank_quantiles']) == card['decoding']['chosen']['q']
        for k in ('view', 'flip'):   # how the network sees the photo, when the selection chose it
            if k in card['decoding']['chosen']: assert cfg[k] == card['decoding']['chosen'][k], k
        return
    ok = [i for i, r in enumerate(t['valid']) if r['cf_ratio'] >= 0.75]
    best = max(ok, key=lambda i: t['valid'][i]['psnr']) if ok else max(range(len(t['temps'])), key=lambda i: t['valid'][i]['cf_ratio'])
    assert t['chosen'] == t['temps'][best] == read_model_file(default_model())['config']['T']
    assert '0.75' in t['rule']


RESULTS = Path(__file__).resolve().parents[1]/'benchmarks'/'results'

def test_familiarity_selection_follows_its_rule(card):
    "The decoding by familiarity was chosen on the selection run's fold by the rule written in familiarity_gate.py (never on test photos); the card reports that choice."
    sys.path.insert(0, str(RESULTS.parent))
    from familiarity_gate import MIN_CF, FAR_MIN_CF
    # the selection the shipped model was built with (train_dayone.py --decoding), else the one recorded in the card
    sel = json.loads((RESULTS.parents[1]/card['decoding']['source'] if 'decoding' in card else RESULTS/'familiarity_gate.json').read_text())
    assert set(sel['fold_files']).isdisjoint(card['data']['test_files'])
    t = sel['table']
    ok_cf = [r for r in t if r['fold']['cf_ratio'] >= MIN_CF]
    ok = [r for r in ok_cf if 'far' not in r or (r['far']['psnr'] >= 0 and r['far']['auc'] >= 0 and r['far']['cf_ratio'] >= FAR_MIN_CF)]
    best = max(ok or ok_cf or t, key=lambda r: r['fold']['psnr'] if ok or ok_cf else r['fold']['cf_ratio'])
    assert {k: best[k] for k in sel['chosen']} == sel['chosen'] == card['familiarity']['chosen']


def test_bundled_model_scores_what_its_card_says(card):
    "Re-measured from the package alone on the bundled photos (all held out): the card's figures, not better or worse."
    from colorize_nbdev.metrics import evaluate, model_colorizer
    res = evaluate(sample_photos(), model_colorizer(*load_model(default_model(), device='cpu')), size=256, baseline=True)
    want = card['scores']['bundled']
    for k in ('psnr', 'auc', 'cf_ratio'):
        assert abs(res[k] - want['dayone'][k]) < 0.05, (k, res[k], want['dayone'][k])
    assert abs(res['baseline']['psnr'] - want['gray']['psnr']) < 0.01


def test_colorize_without_model_works_offline(tmp_path):
    "The installed package alone: no --model, no network."
    photo = sample_photos()[3]
    r = run('colorize', photo, '--out', tmp_path/'out', env=OFFLINE)
    assert r.returncode == 0, r.stderr
    out = Image.open(tmp_path/'out'/f'{photo.stem}.png')
    src = Image.open(photo)
    assert out.size == src.size and out.mode == 'RGB'
    a = np.asarray(out).astype(int)
    assert np.abs(a[..., 0] - a[..., 2]).mean() > 1   # colour, not gray


def test_colorize_device_cuda_without_gpu_is_one_line(tmp_path):
    if torch.cuda.is_available(): pytest.skip('a CUDA GPU is present')
    r = run('colorize', sample_photos()[0], '--out', tmp_path/'o', '--device', 'cuda')
    one_line_error(r, '--device cuda', 'no CUDA GPU')


# ---------------------------------------------------------------- decoding by familiarity (lesson 09's CautiousClassifier)

def _cautious_file(path, bank_photos, **seeing):
    from colorize_nbdev.models.pretrained import TimmClassifier, make_cautious
    from colorize_nbdev.modelfile import save_model
    torch.manual_seed(0)
    save_model(TimmClassifier(pretrained=True), path, 'timm_classifier', dict(encoder='efficientnet_lite0', debias=0.5, T=1., size=64))
    obj = make_cautious(read_model_file(path), bank_photos, debias_far=1.5, T_far=1.5, T=0.38, **seeing)
    torch.save(obj, path)
    return obj


def test_make_cautious_needs_a_timm_classifier(tmp_path):
    from colorize_nbdev.models.pretrained import make_cautious
    obj = _cautious_file(tmp_path/'c.pth', sample_photos()[:3])
    with pytest.raises(ValueError, match='needs a timm_classifier'): make_cautious(obj, sample_photos()[:3])
    assert obj['config']['bank'] == 3 and obj['config']['T'] == 0.38 and obj['config']['bank_quantiles'] == [0.5, 0.9]


def test_fine_tuning_a_cautious_model_adds_its_photos_to_the_bank(tmp_path):
    "Photos a model was fine-tuned on are familiar to it afterwards: the bank grows, their caution is 0."
    from colorize_nbdev.train import fit_colorizer
    from colorize_nbdev.models.pretrained import photo_features_of, nearest_distance
    photos = sample_photos()
    _cautious_file(tmp_path/'c.pth', photos[:3], view=0.5, flip=True)   # validation in training sees the photo as training does
    learn = fit_colorizer(None, photos[3:11], tmp_path/'tuned.pth', init=tmp_path/'c.pth', epochs=1, size=64, bs=4,
                          valid_pct=0.25, progress=False, verbose=False, num_workers=0)
    trained = [Path(f) for f in learn.dls.train.dataset.files]
    net, config = load_model(tmp_path/'tuned.pth', device='cpu')
    assert type(net).__name__ == 'CautiousClassifier' and config['bank'] == 3 + len(trained) == len(net.bank)
    assert config['T'] == 0.38 and config['T_far'] == 1.5 and (config['view'], config['flip']) == (0.5, True)   # the decoding is kept
    assert nearest_distance(photo_features_of(trained), net.bank).max() < 1e-3


def test_view_and_flip_decide_what_the_network_sees(tmp_path):
    "A model file's view and flip (lesson 09) load with it: the network sees the photo scaled by view, its mirror image averaged in."
    import torch.nn.functional as F
    from colorize_nbdev.color import rgb_to_lab_norm
    from colorize_nbdev.data.samples import crop_tensor
    _cautious_file(tmp_path/'c.pth', sample_photos()[:3], view=0.5, flip=True)
    net, config = load_model(tmp_path/'c.pth', device='cpu')
    assert (net.view, net.flip) == (0.5, True) == (config['view'], config['flip'])
    L = rgb_to_lab_norm(crop_tensor(sample_photos()[5], 128)[None])[0]
    with torch.no_grad():
        net.classify.weight.normal_(0, 0.01)          # a head that is not uniform, so that what the network sees matters
        net.bank_q.copy_(torch.tensor([-2., -1.]))    # every photo far: the cautious decoding
        small = F.interpolate(L, size=(64, 64), mode='bilinear', align_corners=False, antialias=True)
        z = (net._logits(small) + net._logits(small.flip(-1)).flip(-1))/2
        ab = F.interpolate(net.decode(z, T=net.T_far, debias=net.debias_far), size=(64, 64), mode='bilinear', align_corners=False)
        want = F.interpolate(ab, size=(128, 128), mode='bilinear', align_corners=False)
        torch.testing.assert_close(net(L), want)
        net.view, net.flip = 1., False
        assert (net(L) - want).abs().max() > 1e-3     # seen as given, without the mirror: other colours


def test_selection_fold_keeps_scenes_whole():
    "The selection fold of train_dayone.py takes whole scenes (windmill1 and windmill7 together), about the fraction asked, the same every time."
    sys.path.insert(0, str(RESULTS.parent))
    from train_dayone import fold, scene
    photos = [Path(f"pkg__images_things_{s}{i}.jpg") for s in ('windmill', 'tower', 'bridge', 'cat', 'dog', 'boat', 'tree', 'lake')
              for i in range(1 + len(s) % 3)]
    rest, f = fold(photos, 0.3)
    assert sorted(rest + f) == sorted(photos) and {scene(p.name) for p in rest}.isdisjoint({scene(p.name) for p in f})
    assert 0.3*len(photos) <= len(f) < 0.3*len(photos) + 3 and (rest, f) == fold(photos, 0.3)
    assert fold(photos, 0.3, seed=1) != (rest, f)


def test_train_dayone_with_extra_photos_end_to_end(tmp_path):
    """train_dayone.py --extra-photos trains on more photos and never tests on them: a selection run (its SELECTION.json
    names the extra photos of its bank), then a run built with a recorded decoding, scored, packaged and carded; development
    photos copied into the extra folder and photos of an excluded subject are left out. (The path to a bigger day-one model.)"""
    sys.path.insert(0, str(RESULTS.parent))
    from familiarity_gate import run_files
    extra = tmp_path/'extra'
    (extra/'animals').mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(10):   # smooth random colour fields with a few blocks: something to learn, quickly
        base = rng.integers(0, 256, (4, 4, 3)).astype(np.uint8)
        img = np.array(Image.fromarray(base).resize((160, 160), Image.BILINEAR))
        img[40*(i % 3):40*(i % 3) + 40, 30:90] = rng.integers(0, 256, 3)
        Image.fromarray(img).save(extra/f"field_{'abcdefghij'[i]}.png")
    Image.fromarray(img).save(extra/'animals'/'zebra.png')            # an excluded subject
    dev = tmp_path/'dev'   # "development photos": the bundled ones (the test set) and four of other scenes
    dev.mkdir()
    bundled = sample_photos()
    for p in bundled: (dev/p.name).symlink_to(p)
    for i, s in enumerate(('tower1', 'tower2', 'lake1', 'bridge1')):
        Image.fromarray(np.roll(img, 20*i + 20, axis=1)).save(dev/f"pkg__images_things_{s}.png")
    (extra/'copy.jpg').write_bytes(bundled[0].read_bytes())           # a test photo under another name
    windmill = next(p for p in bundled if 'windmill' in p.name)
    (extra/windmill.name).write_bytes(b'not the same bytes at all')     # a development photo's name
    script, work = str(RESULTS.parent/'train_dayone.py'), tmp_path/'runs'
    common = ['--photos', str(dev), '--extra-photos', str(extra), '--epochs', '1', '--freeze-encoder', '--exclude-subject', 'animals']
    r = subprocess.run([sys.executable, script, *common, '--select-fold', '0.3', '--work', str(work/'select')], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert '2 development photos left out' in r.stdout, r.stdout
    sel = json.loads((work/'select'/'SELECTION.json').read_text())
    assert sorted(sel['test_files']) == sorted(p.name for p in bundled)
    assert sel['fold_files'] and all('_things_' in n for n in sel['fold_files'] + sel['bank_files'])   # the fold: development scenes
    assert sel['bank_extra_files'] and all(n.startswith('field_') for n in sel['bank_extra_files'])
    bank, fold_files = run_files(work/'select', dev, extra)
    assert all(p.exists() for p in bank + fold_files) and len(bank) == len(sel['bank_files']) + len(sel['bank_extra_files'])
    with pytest.raises(SystemExit, match='give the same --extra-photos'): run_files(work/'select', dev)
    out = tmp_path/'model'/'dayone.pth'
    r = subprocess.run([sys.executable, script, *common, '--decoding', str(RESULTS/'familiarity_gate_view.json'), '--temps', '1.0',
                        '--bank-max', '4', '--work', str(work/'main'), '--out', str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    card = json.loads(out.with_suffix('.json').read_text())
    assert card['data']['extra_photos']['n'] == 10, r.stdout
    assert card['data']['n_train'] == 14 and card['config']['bank'] == 4
    assert sorted(card['data']['test_files']) == sorted(p.name for p in bundled)
    assert card['scores']['dayone']['n'] == len(bundled) and card['sha256'] == hashlib.sha256(out.read_bytes()).hexdigest()
    net, config = load_model(out)
    assert read_model_file(out)['arch'] == 'cautious_classifier' and net.bank.shape[0] == 4 == config['bank']


def test_decode_families_start_from_the_models_own_decoding():
    "decode_families.py: with no chroma raise and no gain its decoding is the model's `decode`; raising chroma or gain adds colour."
    sys.path.insert(0, str(RESULTS.parent))
    from decode_families import decoder
    net, _ = load_model(default_model(), device='cpu')
    z = torch.randn(2, net.bins.shape[0], 5, 6, generator=torch.Generator().manual_seed(0))*3
    decode = decoder(net)
    for d, t in ((0., 0.38), (0.5, 1.), (1.5, 0.2)):
        torch.testing.assert_close(decode(z, d, t), net.decode(z, T=t, debias=d), rtol=1e-4, atol=1e-5)
    base = decode(z, 0.5, 1.).norm(dim=1)
    assert (decode(z, 0.5, 1., s=1.).norm(dim=1) >= base - 1e-5).all() and decode(z, 0.5, 1., s=1.).norm(dim=1).mean() > base.mean()
    torch.testing.assert_close(decode(z, 0.5, 1., g=1.3), 1.3*decode(z, 0.5, 1.))


def test_by_scene_groups_photos_and_weighs_colourful_ones():
    "by_scene.py: photos of one scene (fish2, fish10) are one row; the CF ratio of a set is mean prediction over mean truth."
    sys.path.insert(0, str(RESULTS.parent))
    from by_scene import by_scene
    row = lambda f, psnr, auc, pred, gt: dict(file=f, psnr=psnr, auc=auc, cf_pred=pred, cf_gt=gt)
    files = ['pkg__images_fishes_fish2.jpg', 'pkg__images_fishes_fish10.jpg', 'pkg__images_tools_hammer1.jpg']
    gray = [row(f, 20., 80., 0., gt) for f, gt in zip(files, (60., 40., 10.))]
    pred = [row(files[0], 21., 81., 30., 60.), row(files[1], 20.5, 80., 10., 40.), row(files[2], 23., 84., 10., 10.)]
    t = by_scene(gray, pred)
    assert set(t) == {'fish', 'hammer', 'all'} and t['fish']['n'] == 2 and t['all']['n'] == 3
    assert abs(t['fish']['psnr'] - 0.75) < 1e-9 and abs(t['fish']['cf_ratio'] - 0.4) < 1e-9 and t['hammer']['cf_ratio'] == 1.
    assert abs(t['all']['cf_ratio'] - 50/110) < 1e-9   # not the mean of the photos' ratios (0.61)
    with pytest.raises(ValueError, match='rows differ'): by_scene(gray, pred[::-1])
