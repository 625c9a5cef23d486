"""Real 2-process DistributedDataParallel on CPU (gloo) for `LotteryRewindCallback`: after every level the ranks hold
bit-identical models and masks at the asked density, and the same history (rank 0's values).

The process launch (`run_ranks`), data sharding and the DDP wrapper are `tests/test_ddp.py`'s. Ranks start from different random
models and, here, also validate on different shards, so their own metrics differ: the history must still be rank 0's.
"""
import pytest, torch
from test_ddp import WORLD, run_ranks, _learner, _assert_same_state

N_FITS = 3  # level 0 (dense), then the tickets at density 1/2 and 1/4
SCENARIOS = {  # name: LotteryRewindCallback kwargs (prune_fraction 0.5)
    'weight_global': dict(granularity='weight', context='global'),
    'filter_local_random': dict(granularity='filter', context='local', criteria='random', rewind_iter=3),
}

def _shard_valid(learn, rank):
    "This rank's shard of the validation set (as fastai's `DistributedDL` gives it), so ranks see different metrics."
    ds = learn.dls.valid.dataset
    ds.x, ds.y = ds.x[rank::WORLD], ds.y[rank::WORLD]
    learn.dls.loaders[1] = learn.dls.valid.new(ds)

def _run(rank, name):
    "Train one scenario on this rank; returns what the parent compares, one entry per fit."
    import fastai.callback.schedule  # noqa: F401  (patches fit_one_cycle)
    from fastai.metrics import accuracy
    from fastprune.callbacks.lottery import LotteryRewindCallback
    torch.manual_seed(rank)  # per-rank RNG (data order, `random` scores) as under a real launcher
    lth = LotteryRewindCallback(0.5, **SCENARIOS[name])
    learn = _learner(rank, lth)
    learn.metrics = [accuracy]
    _shard_valid(learn, rank)
    fits = []
    for _ in range(N_FITS):
        with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(1, 1e-2)
        fits.append(dict(sd={k: v.detach().clone() for k, v in learn.model.state_dict().items()},
                         masks={k: v.clone() for k, v in lth.sparsifier.masks.items()},
                         sparsity=lth.sparsifier.achieved_sparsity, level=lth.level,
                         own_accuracy=float(learn.validate()[1]), history=lth.history.to_dict('records')))
    return fits

def _run_all(rank): return {name: dict(fits=_run(rank, name)) for name in SCENARIOS}

@pytest.fixture(scope='module')
def ranks():
    "{scenario: [result of rank 0, result of rank 1]} from one 2-process run."
    r0, r1 = run_ranks(_run_all)
    return {n: [r0[n], r1[n]] for n in r0}

@pytest.mark.parametrize('name', list(SCENARIOS))
def test_lottery_ranks_identical_after_every_level(ranks, name):
    r0, r1 = ranks[name]
    for k, (f0, f1) in enumerate(zip(r0['fits'], r1['fits'])):
        _assert_same_state(f0['sd'], f1['sd'])  # weights, BN statistics, `_mask` buffers
        _assert_same_state(f0['masks'], f1['masks'])
        assert f0['level'] == f1['level'] == k + 1
        assert f0['sparsity'] == f1['sparsity']
        assert 1 - f0['sparsity'] == pytest.approx(0.5 ** k, abs=0.02)  # density (1 - p)^k after fit k
        sd = f0['sd']
        for p, m in f0['masks'].items(): assert not sd[p][~m].any(), p  # masked weights are zero

@pytest.mark.parametrize('name', list(SCENARIOS))
def test_lottery_history_is_rank0s(ranks, name):
    r0, r1 = ranks[name]
    own = [[f['own_accuracy'] for f in r['fits']] for r in (r0, r1)]
    assert own[0] != own[1]  # each rank validates its own shard: their own metrics differ...
    for f0, f1 in zip(r0['fits'], r1['fits']):
        assert f0['history'] == f1['history']  # ...but both hold rank 0's history
    h = r0['fits'][-1]['history']
    assert [row['level'] for row in h] == list(range(N_FITS))
    assert [row['final_accuracy'] for row in h] == pytest.approx(own[0])
