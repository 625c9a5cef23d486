"""Checkpoints and failure: an interrupted pruning fit resumes to the same masks; a surgically changed model saves and
loads; surgery that fails midway leaves model and optimizer exactly as they were."""
import random, copy
import pytest, torch, torch.nn as nn
from fastai.learner import Learner, CancelFitException
from fastai.callback.core import Callback
from fastai.callback.tracker import SaveModelCallback
from fastai.optimizer import Adam
import fastai.callback.schedule  # noqa: F401  (patches fit_one_cycle)
from fastprune.data import digits_dls
from fastprune.models import vgg_bn
from fastprune.callbacks.sparsify import SparsifyCallback
from fastprune.surgery.edit import prune_units, save_pruned, load_pruned

torch.set_num_threads(1)
N_EPOCH, STOP_EPOCH, STOP_ITER = 3, 1, 5

def _model(): return vgg_bn(widths=((8,), (16,)), fc=16)

class _EpochSeed(Callback):
    "Same data order for a given epoch in every run (an uninterrupted and a resumed fit start their RNGs differently)."
    order = 0
    def before_epoch(self): self.dls.train.rng = random.Random(self.epoch)

class _Interrupt(Callback):
    "Raise `exc` at batch `iter` of epoch `epoch`, as a crash or Ctrl-C would."
    order = 0
    def __init__(self, exc, epoch=STOP_EPOCH, iter=STOP_ITER): self.exc, self.at = exc, (epoch, iter)
    def before_batch(self):
        if (self.epoch, self.iter) == self.at: raise self.exc('injected interrupt')

def _learner(path, *cbs, sparsity=0.6, **sparsify_kw):
    torch.manual_seed(0)
    sp = SparsifyCallback(sparsity, **({'granularity': 'weight', 'schedule': 'agp'} | sparsify_kw))
    learn = Learner(digits_dls(size=8, bs=64), _model(), path=path, opt_func=Adam, cbs=[sp, _EpochSeed(), *cbs])
    return learn, sp

def _fit(learn, **kw):
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(N_EPOCH, 1e-2, **kw)

def _state(learn): return {k: v.clone() for k, v in learn.model.state_dict().items()}

def _assert_equal_states(a, b):
    assert a.keys() == b.keys()
    diff = [k for k in a if not torch.equal(a[k], b[k])]
    assert not diff, f"differ: {diff}"

@pytest.fixture(scope='module')
def uninterrupted(tmp_path_factory):
    learn, sp = _learner(tmp_path_factory.mktemp('full'))
    _fit(learn)
    return _state(learn), {k: v.clone() for k, v in sp.sparsifier.masks.items()}, sp.achieved_sparsity

@pytest.mark.parametrize('exc', [RuntimeError, KeyboardInterrupt, CancelFitException])
def test_resume_after_interrupt_matches_uninterrupted(tmp_path, uninterrupted, exc):
    sd_full, masks_full, sparsity_full = uninterrupted
    learn, sp = _learner(tmp_path, SaveModelCallback(every_epoch=True, with_opt=True, fname='ckpt'), _Interrupt(exc))
    if exc is CancelFitException: _fit(learn)  # fastai ends the fit quietly
    else:
        with pytest.raises(exc): _fit(learn)
    assert 0 < sp.sparsifier.achieved_sparsity < sparsity_full  # stopped mid-schedule
    assert (tmp_path/'models'/f'ckpt_{STOP_EPOCH - 1}.pth').exists() and not (tmp_path/'models'/f'ckpt_{STOP_EPOCH}.pth').exists()

    fresh, sp2 = _learner(tmp_path)
    fresh.load(f'ckpt_{STOP_EPOCH - 1}', with_opt=True)
    assert sp2.sparsifier.achieved_sparsity > 0  # masks came back with the checkpoint
    _fit(fresh, start_epoch=STOP_EPOCH)
    assert sp2.achieved_sparsity == sparsity_full == pytest.approx(0.6, abs=0.01)
    _assert_equal_states({k: v for k, v in sp2.sparsifier.masks.items()}, masks_full)
    _assert_equal_states(_state(fresh), sd_full)

@pytest.mark.parametrize('granularity,context', [('weight', 'local'), ('filter', 'global')])
def test_taylor_resume_is_bit_identical(tmp_path, granularity, context):
    """`taylor` ranks by |w·grad| summed since the last mask update. The sums are `<weight>_grad_acc` buffers, so a
    checkpoint taken between two updates carries them, and the resumed fit ends bit-identical to the uninterrupted one
    (weights, masks, sums). Control: the same resume with the sums dropped ends elsewhere."""
    kw = dict(criteria='taylor', granularity=granularity, context=context)
    full, _ = _learner(tmp_path/'full', **kw)
    _fit(full)
    learn, _ = _learner(tmp_path, SaveModelCallback(every_epoch=True, with_opt=True, fname='tckpt'), _Interrupt(RuntimeError), **kw)
    with pytest.raises(RuntimeError, match='injected'): _fit(learn)

    def resumed(drop_sums):
        fresh, sp = _learner(tmp_path, **kw)
        fresh.load(f'tckpt_{STOP_EPOCH - 1}', with_opt=True)
        assert sp.sparsifier.has_grads() and 0 < sp.sparsifier.achieved_sparsity < 0.6  # mid-accumulation, mid-schedule
        if drop_sums: sp.sparsifier._reset_grads()
        _fit(fresh, start_epoch=STOP_EPOCH)
        sps = sp.sparsifier  # global ranking of whole blocks lands within half the largest block of the target
        half_block = max(b.block_size(sps) for b in sps.blocks) / 2 / sps._n_weights()
        assert sp.achieved_sparsity == pytest.approx(0.6, abs=max(0.02, half_block))
        return _state(fresh)

    _assert_equal_states(resumed(drop_sums=False), _state(full))
    with pytest.raises(AssertionError, match='differ'): _assert_equal_states(resumed(drop_sums=True), _state(full))

def _compacted(tmp_path):
    "A learner whose model `SparsifyCallback(compact=True)` made physically smaller, and a batch with its outputs."
    learn, sp = _learner(tmp_path, granularity='filter', compact=True, sparsity=0.5)
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(1, 1e-2)
    assert sp.compacted and sum(sp.compacted.values()) > 0
    learn.model.eval()
    x = learn.dls.valid.one_batch()[0][:8].as_subclass(torch.Tensor)
    with torch.no_grad(): expected = learn.model(x)
    return learn, sp, x, expected

def _check_loaded(model, learn, x, expected):
    assert {k: v.shape for k, v in model.state_dict().items()} == {k: v.shape for k, v in learn.model.state_dict().items()}
    fresh = Learner(digits_dls(size=8, bs=64), model)
    fresh.model.eval()
    with torch.no_grad(): assert torch.equal(fresh.model(x), expected)
    with fresh.no_bar(), fresh.no_logging(): fresh.fit(1, 1e-3)  # and it trains

def test_compacted_model_save_load_fresh_learner(tmp_path):
    "The one right way: detach the masks, `save_pruned(learn.model, path)`, `load_pruned(path, factory)`, new `Learner`."
    learn, sp, x, expected = _compacted(tmp_path)
    sp.sparsifier.detach()
    save_pruned(learn.model, tmp_path/'pruned.pt')
    _check_loaded(load_pruned(tmp_path/'pruned.pt', _model), learn, x, expected)

def test_compacted_model_with_masks_save_load(tmp_path):
    learn, sp, x, expected = _compacted(tmp_path)
    save_pruned(learn.model, tmp_path/'pruned.pt')
    _check_loaded(load_pruned(tmp_path/'pruned.pt', _model), learn, x, expected)

def test_compacted_model_torch_save_whole_module(tmp_path):
    "`torch.save(learn.model)` also round-trips (pickles the classes: same code needed to load)."
    learn, sp = _learner(tmp_path, granularity='filter', compact=True, sparsity=0.5)
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(1, 1e-2)
    torch.save(learn.model, tmp_path/'whole.pt')
    model = torch.load(tmp_path/'whole.pt', weights_only=False)
    _assert_equal_states(model.state_dict(), learn.model.state_dict())

# ---- surgery atomicity ------------------------------------------------------------------------------------------
class _Boom(dict):
    "A dict whose writes fail: the last step of the surgery's swap (param_state) or a middle one (optimizer state)."
    def __setitem__(self, k, v): raise RuntimeError('injected failure')

def _snapshot(model, opt_state, param_lists):
    return (copy.deepcopy(model.state_dict()), {n: p for n, p in model.named_parameters()},
            {k: getattr(m, k) for m in model.modules() for k in ('in_channels', 'out_channels', 'in_features', 'out_features', 'num_features') if hasattr(m, k)},
            {id(p): {k: v.clone() if torch.is_tensor(v) else v for k, v in s.items()} for p, s in opt_state.items()},
            [list(pl) for pl in param_lists])

def _check_same(before, model, opt_state, param_lists):
    sd, params, attrs, ostate, plists = before
    _assert_equal_states(model.state_dict(), sd)
    assert all(p is params[n] for n, p in model.named_parameters())  # the very same Parameter objects
    assert {k: getattr(m, k) for m in model.modules() for k in ('in_channels', 'out_channels', 'in_features', 'out_features', 'num_features') if hasattr(m, k)} == attrs
    assert [list(pl) for pl in param_lists] == plists
    assert {id(p) for p in opt_state} == set(ostate)
    for p, s in opt_state.items():
        for k, v in s.items():
            assert torch.equal(v, ostate[id(p)][k]) if torch.is_tensor(v) else v == ostate[id(p)][k]

def _trained(opt_kind):
    torch.manual_seed(0)
    model, x = _model(), torch.randn(4, 3, 8, 8)
    if opt_kind == 'torch':
        opt = torch.optim.Adam(model.parameters(), 1e-2)
        model(x).sum().backward(); opt.step()
        return model, x, opt, opt.state, [pg['params'] for pg in opt.param_groups]
    opt = Adam(model.parameters(), 1e-2)
    model(x).sum().backward(); opt.step()
    return model, x, opt, opt.state, list(opt.param_lists)

@pytest.mark.parametrize('opt_kind', ['torch', 'fastai'])
@pytest.mark.parametrize('where', ['param_state', 'opt_state'])
def test_prune_units_atomic_on_injected_failure(opt_kind, where):
    model, x, opt, ostate, plists = _trained(opt_kind)
    masks = {n: torch.ones_like(p, dtype=torch.bool) for n, p in model.named_parameters()}
    before = _snapshot(model, ostate, plists)
    if where == 'param_state': masks = _Boom(masks)
    else:  # fail while moving optimizer state, after params, sizes and param lists were swapped
        boom = _Boom(); dict.update(boom, ostate)
        opt.state = ostate = boom
    with pytest.raises(RuntimeError, match='injected failure'):
        prune_units(model, {'stack0.0.conv': [0, 3], 'fc1': [1]}, x, opt=opt, param_state=[masks])
    _check_same(before, model, ostate, plists)
    assert model(x).shape == (4, 10)
    if where == 'param_state': assert all(v.shape == dict(model.named_parameters())[k].shape for k, v in masks.items())

# ---- lottery tickets: resume inside a level ---------------------------------------------------------------------
from fastprune.callbacks.lottery import LotteryRewindCallback

def _lottery_learner(path, *cbs, seed=0, **lottery_kw):
    torch.manual_seed(seed)
    lth = LotteryRewindCallback(0.5, **lottery_kw)
    learn = Learner(digits_dls(size=8, bs=64), _model(), path=path, opt_func=Adam, cbs=[lth, _EpochSeed(), *cbs])
    return learn, lth

def _lottery_result(learn, lth):
    return _state(learn), {k: v.clone() for k, v in lth.sparsifier.masks.items()}, lth.level, lth.rewind_point

@pytest.mark.parametrize('interrupted_level,lottery_kw', [(1, dict(granularity='weight')),
                                                          (1, dict(granularity='filter', context='local')),
                                                          (0, dict(granularity='weight', rewind_epoch=2))])
def test_lottery_resume_inside_level_matches_uninterrupted(tmp_path, interrupted_level, lottery_kw):
    """Two levels; the fit of `interrupted_level` crashes in its second epoch and is resumed from the checkpoint of
    its first epoch by a new Learner (another random model) with a new callback. With `rewind_epoch=2` the crash
    comes before the rewind point was recorded: the resumed fit records it. The run ends where the uninterrupted run
    ended: same weights, BN statistics, masks, rewind point and level."""
    learn, lth = _lottery_learner(tmp_path/'full', **lottery_kw)
    for _ in range(2): _fit(learn)
    full_sd, full_masks, full_level, full_rewind = _lottery_result(learn, lth)
    assert full_level == 2 and 0 < lth.sparsifier.achieved_sparsity

    learn, lth = _lottery_learner(tmp_path, **lottery_kw)
    for _ in range(interrupted_level): _fit(learn)
    with pytest.raises(RuntimeError, match='injected'):
        _fit(learn, cbs=[SaveModelCallback(every_epoch=True, with_opt=True, fname='lckpt'), _Interrupt(RuntimeError)])
    assert lth.level == interrupted_level                       # the crashed level was not recorded as finished

    fresh, lth2 = _lottery_learner(tmp_path, seed=1, **lottery_kw)
    fresh.load(f'lckpt_{STOP_EPOCH - 1}', with_opt=True)
    assert lth2.level == interrupted_level and (lth2.rewind_point is None) == (interrupted_level == 0 and 'rewind_epoch' in lottery_kw)
    _fit(fresh, start_epoch=STOP_EPOCH)                         # the rest of the interrupted level
    for _ in range(interrupted_level + 1, 2): _fit(fresh)       # and the levels after it
    sd, masks, level, rewind = _lottery_result(fresh, lth2)
    assert level == full_level
    _assert_equal_states(masks, full_masks)
    _assert_equal_states(rewind, full_rewind)
    _assert_equal_states(sd, full_sd)

def test_resume_with_compaction_during_the_fit(tmp_path):
    """With `compact=True` the checkpoints hold the widths they were taken at: a fresh `Learner` with the callback loads
    one (its load hook resizes the model in place, so the optimizer state loads too) and the resumed fit ends where
    the uninterrupted one does, widths, weights, masks and sparsity."""
    kw = dict(granularity='filter', compact=True, schedule='linear', sparsity=0.5)
    full, sp_full = _learner(tmp_path/'full', **kw)
    _fit(full)
    learn, _ = _learner(tmp_path, SaveModelCallback(every_epoch=True, with_opt=True, fname='cckpt'), _Interrupt(RuntimeError), **kw)
    with pytest.raises(RuntimeError, match='injected'): _fit(learn)
    fresh, sp = _learner(tmp_path, **kw)
    n_dense = sum(p.numel() for p in fresh.model.parameters())
    fresh.load(f'cckpt_{STOP_EPOCH - 1}', with_opt=True)
    assert sum(p.numel() for p in fresh.model.parameters()) < n_dense  # the checkpoint's widths
    _fit(fresh, start_epoch=STOP_EPOCH)
    got, ref = _state(fresh), _state(full)
    assert {k: v.shape for k, v in got.items()} == {k: v.shape for k, v in ref.items()}
    for k in ref: torch.testing.assert_close(got[k], ref[k], rtol=1e-4, atol=1e-5, msg=k)
    assert sp.achieved_sparsity == pytest.approx(sp_full.achieved_sparsity) == pytest.approx(0.5, abs=0.02)
