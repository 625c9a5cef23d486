"""Real 2-process DistributedDataParallel on CPU (gloo): fastprune callbacks must end with the same model on every rank.

`run_ranks(fn, ...)` spawns the gloo processes, runs `fn(rank, ...)` on each and returns what every rank returned; the
tests compare the ranks in the parent. One spawn runs every scenario of a file in sequence (process start and imports
dominate the time). The data-parallel wrapper is `_DDPTrainer`, the accelerate-free core of fastai's
`DistributedTrainer` (wrap in `before_fit`, unwrap in `after_fit`, order 11): fastai's own `learn.distrib_ctx()` needs
the `accelerate` package, which fastprune does not depend on. `tests/test_ddp_callbacks.py` and
`tests/test_ddp_cluster.py` use the same helpers.
"""
import contextlib, io, os, socket, tempfile
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
DAS, DAS_EPOCHS = 'das', 2  # two epochs: grow, prune, then grow again on the pruned model

def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

def _rank_main(rank, world_size, port, out, fn, args):
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group('gloo', rank=rank, world_size=world_size)
    try: torch.save(fn(rank, *args), os.path.join(out, f'{rank}.pt'))
    finally: dist.destroy_process_group()

def run_ranks(fn, *args, world_size=WORLD):
    """`[fn(0, *args), fn(1, *args), ...]`, each run in its own process of a `world_size`-rank gloo group.
    `fn` must be a module-level function (it is pickled into the spawned processes); an exception on any rank stops
    them all and is raised here with that rank's traceback."""
    with tempfile.TemporaryDirectory() as out:
        mp.spawn(_rank_main, args=(world_size, _free_port(), out, fn, args), nprocs=world_size)
        return [torch.load(os.path.join(out, f'{r}.pt'), weights_only=False) for r in range(world_size)]

def _rank_dls(rank, world):
    """digits `DataLoaders` whose training set is this rank's shard (what fastai's `DistributedDL` does), loaded in
    the rank's own process: a worker process would import torch and fastai anew for every epoch and validation."""
    from fastprune.data import digits_dls
    dls = digits_dls(size=8, bs=32)
    ds = dls.train.dataset
    ds.x, ds.y = ds.x[rank::world], ds.y[rank::world]
    dls.loaders = [dls.train.new(ds, num_workers=0), dls.valid.new(num_workers=0)]  # batch size, shuffling, normalisation kept
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
    if name == DAS: cb = DASGrowPruneCallback(alpha=0.1, tau=1e-2, min_growth=2, growth_pct=0.)
    else: cb = SparsifyCallback(0.5, **SCENARIOS[name])
    learn, printed = _learner(rank, cb), io.StringIO()
    with learn.no_bar(), learn.no_logging(), contextlib.redirect_stdout(printed):
        learn.fit_one_cycle(DAS_EPOCHS if name == DAS else 1, 1e-2)
    res = dict(sd={k: v.detach().clone() for k, v in learn.model.state_dict().items()}, printed=printed.getvalue())
    if name == DAS: res.update(sizes=cb.sizes(), history=cb.history, initial=cb.initial)
    else: res.update(masks={k: v.clone() for k, v in cb.sparsifier.masks.items()}, sparsity=cb.achieved_sparsity,
                     compacted=cb.compacted)
    return res

def _run_all(rank): return {name: _run(rank, name) for name in [*SCENARIOS, DAS]}

@pytest.fixture(scope='module')
def ranks():
    "{scenario: [result of rank 0, result of rank 1]} from one 2-process run."
    r0, r1 = run_ranks(_run_all)
    return {n: [r0[n], r1[n]] for n in r0}

def _assert_same_state(a, b):
    assert a.keys() == b.keys()
    diff = [k for k in a if not torch.equal(a[k], b[k])]
    assert not diff, f"tensors differ between ranks: {diff}"

@pytest.mark.parametrize('name', ['weight', 'filter', 'global_taylor'])
def test_sparsify_ranks_identical(ranks, name):
    r0, r1 = ranks[name]
    _assert_same_state(r0['sd'], r1['sd'])  # weights, BN buffers and the `_mask` buffers
    _assert_same_state(r0['masks'], r1['masks'])
    assert r0['sparsity'] == r1['sparsity']
    assert r0['sparsity'] == pytest.approx(0.5, abs=0.05)
    w = {k: v for k, v in r0['sd'].items() if k.endswith('.weight') and k + '_mask' in r0['sd']}
    assert all(torch.equal(v[~r0['sd'][k + '_mask']], torch.zeros_like(v[~r0['sd'][k + '_mask']])) for k, v in w.items())

def test_sparsify_compact_ranks_identical(ranks):
    r0, r1 = ranks['filter_compact']
    assert 'compact: removed' in r0['printed'] and r1['printed'] == ''  # the report and summary come from rank 0 only
    assert r0['compacted'] and r0['compacted'] == r1['compacted']
    _assert_same_state(r0['sd'], r1['sd'])
    assert {k: v.shape for k, v in r0['sd'].items()} == {k: v.shape for k, v in r1['sd'].items()}

def test_random_criterion_ranks_identical(ranks):
    "`random` scores differ between ranks; DDP's buffer broadcast must not hide that behind equal masks only."
    r0, r1 = ranks['random']
    _assert_same_state(r0['masks'], r1['masks'])
    _assert_same_state(r0['sd'], r1['sd'])

def test_das_ranks_identical(ranks):
    "Every grow and prune happens on the unwrapped module on all ranks; the DDP wrapper is rebuilt after each."
    r0, r1 = ranks[DAS]
    assert r0['sizes'] == r1['sizes']
    _assert_same_state(r0['sd'], r1['sd'])
    assert {k: r0['sd'][k + '.weight'].shape[0] for k in r0['sizes']} == r0['sizes']
    h = r0['history']  # the same on every rank (the state dicts compared above carry it as `das.history`)
    assert len(h) == DAS_EPOCHS and h[-1]['sizes'] == r0['sizes'] and r1['history'] == h and r1['initial'] == r0['initial']
    before = [r0['initial']['sizes']] + [e['sizes'] for e in h[:-1]]
    assert all(e['grown_to'][k] == b[k] + 2 for e, b in zip(h, before) for k in b)  # grew by min_growth
    assert any(e['grown_to'][k] > e['sizes'][k] for e in h for k in e['sizes'])  # and pruned
