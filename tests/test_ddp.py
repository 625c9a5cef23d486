"""Real 2-process DistributedDataParallel on CPU (gloo): fastprune callbacks must end with the same model on every rank.

One `torch.multiprocessing.spawn` runs every scenario in sequence (process start and imports dominate the time);
each rank saves what it ended with, and the tests below compare the ranks in the parent. The data-parallel wrapper is
`_DDPTrainer`, the accelerate-free core of fastai's `DistributedTrainer` (wrap in `before_fit`, unwrap in `after_fit`,
order 11): fastai's own `learn.distrib_ctx()` needs the `accelerate` package, which fastprune does not depend on.
"""
import os, socket, traceback
import pytest, torch
import torch.distributed as dist, torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel

WORLD = 2
SCENARIOS = {  # name: SparsifyCallback kwargs (all at sparsity 0.5)
    'weight': dict(granularity='weight'),
    'filter': dict(granularity='filter'),
    'filter_compact': dict(granularity='filter', compact=True),
    'global_taylor': dict(granularity='weight', context='global', criteria='taylor'),
    'random': dict(granularity='weight', criteria='random'),
}
DAS = 'das'

def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

def _rank_dls(rank, world):
    "digits `DataLoaders` whose training set is this rank's shard (what fastai's `DistributedDL` does)."
    from fastai.data.core import DataLoader
    from fastprune.data import digits_dls
    dls = digits_dls(size=16, bs=32)
    ds = dls.train.dataset
    ds.x, ds.y = ds.x[rank::world], ds.y[rank::world]
    dls.loaders[0] = DataLoader(ds, bs=32, shuffle=True, drop_last=True)
    return dls

def _learner(rank, cb):
    from fastai.learner import Learner
    from fastai.callback.core import Callback
    from fastprune.models import vgg_bn

    class _DDPTrainer(Callback):
        "Wrap the model in `DistributedDataParallel` for the fit (fastai `DistributedTrainer` without accelerate)."
        order = 11
        def before_fit(self): self.learn.model = DistributedDataParallel(self.model)
        def after_fit(self): self.learn.model = self.model.module

    torch.manual_seed(100 + rank)  # ranks start different on purpose: DDP must make them agree
    return Learner(_rank_dls(rank, WORLD), vgg_bn(widths=((8,), (16,)), fc=16), cbs=[cb, _DDPTrainer()])

def _run(rank, name):
    "Train one scenario on this rank; returns what the parent compares."
    import fastai.callback.schedule  # noqa: F401  (patches fit_one_cycle)
    from fastprune.callbacks.sparsify import SparsifyCallback
    from fastprune.callbacks.das import DASGrowPruneCallback
    torch.manual_seed(rank)  # per-rank RNG (data order, `random` scores) as under a real launcher
    if name == DAS: cb = DASGrowPruneCallback(alpha=1e-3, tau=1e-2, min_growth=2, growth_pct=0.)
    else: cb = SparsifyCallback(0.5, **SCENARIOS[name])
    learn = _learner(rank, cb)
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(1, 1e-2)
    res = dict(sd={k: v.detach().clone() for k, v in learn.model.state_dict().items()})
    if name == DAS: res['sizes'] = cb.sizes()
    else: res.update(masks={k: v.clone() for k, v in cb.sparsifier.masks.items()}, sparsity=cb.achieved_sparsity,
                     compacted=cb.compacted)
    return res

def _worker(rank, port, out):
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group('gloo', rank=rank, world_size=WORLD)
    try:
        for name in [*SCENARIOS, DAS]:
            try: res = _run(rank, name)
            except Exception: res = dict(error=traceback.format_exc())
            torch.save(res, os.path.join(out, f'{name}-{rank}.pt'))
            dist.barrier()
    finally: dist.destroy_process_group()

@pytest.fixture(scope='module')
def ranks(tmp_path_factory):
    "{scenario: [result of rank 0, result of rank 1]} from one 2-process run."
    out = str(tmp_path_factory.mktemp('ddp'))
    mp.spawn(_worker, args=(_free_port(), out), nprocs=WORLD)
    return {n: [torch.load(os.path.join(out, f'{n}-{r}.pt'), weights_only=False) for r in range(WORLD)]
            for n in [*SCENARIOS, DAS]}

def _ok(results):
    for r in results: assert 'error' not in r, r.get('error')
    return results

def _assert_same_state(a, b):
    assert a.keys() == b.keys()
    diff = [k for k in a if not torch.equal(a[k], b[k])]
    assert not diff, f"tensors differ between ranks: {diff}"

@pytest.mark.parametrize('name', ['weight', 'filter', 'global_taylor'])
def test_sparsify_ranks_identical(ranks, name):
    r0, r1 = _ok(ranks[name])
    _assert_same_state(r0['sd'], r1['sd'])  # weights, BN buffers and the `_mask` buffers
    _assert_same_state(r0['masks'], r1['masks'])
    assert r0['sparsity'] == r1['sparsity']
    assert r0['sparsity'] == pytest.approx(0.5, abs=0.05)
    w = {k: v for k, v in r0['sd'].items() if k.endswith('.weight') and k + '_mask' in r0['sd']}
    assert all(torch.equal(v[~r0['sd'][k + '_mask']], torch.zeros_like(v[~r0['sd'][k + '_mask']])) for k, v in w.items())

def test_sparsify_compact_ranks_identical(ranks):
    r0, r1 = _ok(ranks['filter_compact'])
    assert r0['compacted'] and r0['compacted'] == r1['compacted']
    _assert_same_state(r0['sd'], r1['sd'])
    assert {k: v.shape for k, v in r0['sd'].items()} == {k: v.shape for k, v in r1['sd'].items()}

def test_random_criterion_ranks_identical(ranks):
    "`random` scores differ between ranks; DDP's buffer broadcast must not hide that behind equal masks only."
    r0, r1 = _ok(ranks['random'])
    _assert_same_state(r0['masks'], r1['masks'])
    _assert_same_state(r0['sd'], r1['sd'])

@pytest.mark.xfail(strict=True, reason="DASGrowPruneCallback edits `self.model`, the DDP wrapper during the fit: the "
                   "surgery must act on the wrapped module and the wrapper be rebuilt after each shape change")
def test_das_ranks_identical(ranks):
    r0, r1 = _ok(ranks[DAS])
    assert r0['sizes'] == r1['sizes']
    _assert_same_state(r0['sd'], r1['sd'])
