"""fastprune's callbacks under fastai's own `learn.distrib_ctx()`, launched as fastai's docs launch it: `torchrun` starts
2 CPU processes (gloo) that run this file as a script; every rank saves what it ended with and the tests compare them,
as `tests/test_ddp.py` does for the hand-wrapped DDP path.

fastai 2.8.12 trains on CPU under `distrib_ctx` only with the following (each failure is asserted below):
- the `accelerate` package (a `dev` extra): without it `import fastai.distributed` fails with
  `NameError: name 'Accelerator' is not defined`, so `Learner.distrib_ctx` does not exist;
- `distrib_ctx(cpu=True)` (or `ACCELERATE_USE_CPU=1`): otherwise accelerate sees no GPU, starts no process group and
  leaves the model unwrapped, and `DistributedTrainer.before_fit` fails on `model.device`;
- `sync_bn=False`: DDP refuses `SyncBatchNorm` on CPU ('SyncBatchNorm layers only work with GPU modules');
- `DistributedDL._broadcast` without its `.cuda()` (`cpu_broadcast` below): fastai moves each epoch's index list to
  CUDA before broadcasting it, which fails without a GPU.
`accelerate launch --cpu --num_processes 2` starts a single process (accelerate's multi-CPU launch goes through MPI);
`torchrun --nproc_per_node 2` (what `accelerate launch --multi_gpu` runs) starts two.
"""
import os, subprocess, sys, tempfile
from pathlib import Path
import pytest, torch

HERE = Path(__file__).resolve()
LAYER = 'stack1.0.conv'  # the 16-filter second conv of the tiny VGG
RUNS = {  # name: (epochs per fit, number of fits)
    'weight': (1, 1), 'random': (1, 1), 'filter_compact': (1, 1), 'lottery': (1, 2), 'cluster': (1, 1), 'das': (2, 1),
    'kd': (1, 1)}
FAILS = ('no_cpu_flag', 'sync_bn', 'cuda_broadcast')
NO_ACCELERATE = "fastai's learn.distrib_ctx() needs the accelerate package (a dev extra: pip install -e '.[dev]')"
DDL_ONE_BATCH = "has no attribute 'n'"  # fastai's `DistributedDL.one_batch()` before the loader's first iteration

def _have_accelerate():
    import importlib.util
    return importlib.util.find_spec('accelerate') is not None

needs_accelerate = pytest.mark.skipif(not _have_accelerate(), reason=NO_ACCELERATE)


# -- the worker: this file run by torchrun ---------------------------------------------------------------------------
def cpu_broadcast():
    "Patch fastai's `DistributedDL._broadcast` to keep the indices on the CPU under gloo (fastai's moves them to CUDA)."
    import torch.distributed as dist
    from fastcore.basics import patch
    from fastai.distributed import DistributedDL

    @patch
    def _broadcast(self:DistributedDL, t, rank):
        "Broadcast the list `t` from `rank`; on the backend's device (fastai's moves it to CUDA, for nccl only)."
        t = torch.tensor(t, dtype=torch.long)
        if dist.get_backend() == 'nccl': t = t.cuda()
        dist.broadcast(t, rank)
        return t.cpu().tolist()

def _callback(name):
    from fastprune.callbacks.sparsify import SparsifyCallback
    from fastprune.callbacks.lottery import LotteryRewindCallback
    from fastprune.callbacks.cluster import ClusterPruneCallback
    from fastprune.callbacks.das import DASGrowPruneCallback
    from fastprune.callbacks.distill import KnowledgeDistillationCallback
    if name == 'weight': return SparsifyCallback(0.5, 'weight')
    if name == 'random': return SparsifyCallback(0.5, 'weight', criteria='random')
    if name == 'filter_compact': return SparsifyCallback(0.5, 'filter', compact=True)
    if name == 'lottery': return LotteryRewindCallback(0.5, granularity='filter', context='local', criteria='random', rewind_iter=3)
    if name == 'cluster':  # the encoder differs between ranks: only rank 0's is used
        encoder = torch.nn.Sequential(torch.nn.Conv2d(3, 6, 3), torch.nn.ReLU())
        return ClusterPruneCallback(0.5, layers=[LAYER], encoder=encoder, render_kw=dict(size=8, steps=2))
    if name == 'das': return DASGrowPruneCallback(alpha=0.1, tau=1e-2, min_growth=2, growth_pct=0.)
    if name == 'kd': return KnowledgeDistillationCallback('snapshot')
    return SparsifyCallback(0.5, 'filter')  # the failing settings

def _learner(rank, cb):
    from fastai.learner import Learner
    from fastai.metrics import accuracy
    from fastprune.data import digits_dls
    from fastprune.models import vgg_bn
    torch.manual_seed(100 + rank)  # ranks start different on purpose: DDP must make them agree
    return Learner(digits_dls(size=8, bs=32), vgg_bn(widths=((8,), (16,)), fc=16), metrics=accuracy, cbs=cb)

def _seen():
    "A callback recording what the fit ran on: the model's and each phase's loader's classes, batches per epoch."
    from fastai.callback.core import Callback
    class Seen(Callback):
        order = 12  # after fastai's `DistributedTrainer` (11)
        def before_fit(self): self.log = []
        def before_train(self):
            import torch.distributed as dist
            self.log.append(dict(model=type(self.model).__name__, dl=type(self.dl).__name__, n=len(self.dl),
                                 backend=dist.get_backend() if dist.is_initialized() else None))
    return Seen()

def _run(rank, name):
    "Train one scenario under `learn.distrib_ctx(sync_bn=False, cpu=True)`; returns what the parent compares."
    import fastai.callback.schedule  # noqa: F401  (patches fit_one_cycle)
    torch.manual_seed(rank)  # per-rank RNG (data order, `random` scores) as under a real launcher
    epochs, fits = RUNS[name]
    cb, seen = _callback(name), _seen()
    learn = _learner(rank, [cb, seen])
    start = {k: v.detach().clone() for k, v in learn.model.state_dict().items()}
    res = dict(fits=[])
    with learn.distrib_ctx(sync_bn=False, cpu=True):
        for _ in range(fits):
            with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(epochs, 1e-2)
            fit = dict(sd={k: v.detach().clone() for k, v in learn.model.state_dict().items()}, seen=seen.log)
            if name == 'lottery': fit.update(masks={k: v.clone() for k, v in cb.sparsifier.masks.items()}, level=cb.level,
                                             sparsity=cb.sparsifier.achieved_sparsity, history=cb.history.to_dict('records'))
            res['fits'].append(fit)
    res.update(sd=res['fits'][-1]['sd'], model=type(learn.model).__name__, dls=[type(dl).__name__ for dl in learn.dls.loaders])
    if name in ('weight', 'random', 'filter_compact'):
        res.update(masks={k: v.clone() for k, v in cb.sparsifier.masks.items()}, sparsity=cb.achieved_sparsity,
                   compacted=cb.compacted)
    if name == 'cluster':
        res.update(compacted=cb.compacted, width=learn.model.get_submodule(LAYER).out_channels,
                   records={l: {k: r[k] for k in ('keep', 'prune')} for l, r in cb.records.items()})
    if name == 'das': res.update(sizes=cb.sizes(), history=cb.history, initial=cb.initial)
    if name == 'kd': res.update(teacher={k: v.clone() for k, v in cb.teacher.state_dict().items()}, start=start)
    return res

def _fail(rank, name):
    "The message of the error a fit raises under `learn.distrib_ctx` with one of the settings CPU training needs missing"
    learn = _learner(rank, _callback(name))
    kw = dict(sync_bn=name == 'sync_bn', cpu=name != 'no_cpu_flag')
    try:
        with learn.distrib_ctx(**kw), learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-2)
    except Exception as e: return f"{type(e).__name__}: {e}"
    return None

def _main(out, which):
    torch.set_num_threads(1)
    import fastai.distributed  # noqa: F401  (adds `Learner.distrib_ctx`; needs accelerate)
    from fastai.torch_core import rank_distrib
    res = {}
    if which == 'no_cpu_flag': res[which] = _fail(rank_distrib(), which)  # the first `Accelerator` sets the process up
    else:
        for name in FAILS[1:]: res[name] = _fail(rank_distrib(), name)    # fastai's `_broadcast` as it is...
        cpu_broadcast()                                                    # ...then on the CPU
        res.update({name: _run(rank_distrib(), name) for name in RUNS})
    torch.save(res, Path(out)/f'{rank_distrib()}.pt')


# -- the tests ------------------------------------------------------------------------------------------------------
def launch(which='all', nproc=2):
    "Run this file under `torchrun --standalone --nproc_per_node nproc`; the per-rank results, rank 0 first."
    with tempfile.TemporaryDirectory() as out:
        env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONWARNINGS='ignore')
        cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', str(nproc),
               str(HERE), out, which]
        p = subprocess.run(cmd, cwd=HERE.parent, env=env, capture_output=True, text=True, timeout=900)
        assert p.returncode == 0, f"torchrun failed ({p.returncode}):\n{p.stdout[-3000:]}\n{p.stderr[-6000:]}"
        return [torch.load(Path(out)/f'{r}.pt', weights_only=False) for r in range(nproc)]

@pytest.fixture(scope='module')
def ranks():
    "{scenario: [result of rank 0, result of rank 1]} from one 2-process torchrun launch."
    r0, r1 = launch()
    return {n: [r0[n], r1[n]] for n in r0}

def _assert_same_state(a, b):
    assert a.keys() == b.keys()
    diff = [k for k in a if not torch.equal(a[k], b[k])]
    assert not diff, f"tensors differ between ranks: {diff}"

def _assert_fastai_ddp(r, epochs=1):
    "The fit ran under fastai's `DistributedTrainer`: accelerate's DDP over gloo, each rank half of each epoch's batches"
    for fit in r['fits']:
        assert [s['model'] for s in fit['seen']] == ['DistributedDataParallel'] * epochs
        assert {s['dl'] for s in fit['seen']} == {'DistributedDL'} and {s['backend'] for s in fit['seen']} == {'gloo'}
        assert {s['n'] for s in fit['seen']} == {22}  # 44 training batches of digits (bs 32), half on each rank
    assert r['model'] == 'Sequential' and r['dls'] == ['TfmdDL', 'TfmdDL']  # unwrapped after the context

@needs_accelerate
@pytest.mark.parametrize('name', ['weight', 'random', 'filter_compact'])
def test_sparsify_ranks_identical(ranks, name):
    r0, r1 = ranks[name]
    _assert_fastai_ddp(r0); _assert_fastai_ddp(r1)
    _assert_same_state(r0['sd'], r1['sd'])  # weights, BN buffers and the `_mask` buffers
    _assert_same_state(r0['masks'], r1['masks'])
    assert r0['sparsity'] == r1['sparsity'] == pytest.approx(0.5, abs=0.05)
    sd = r0['sd']
    for p, m in r0['masks'].items():
        if p in sd and sd[p].shape == m.shape: assert not sd[p][~m].any(), p  # masked weights are zero
    assert r0['compacted'] == r1['compacted'] and bool(r0['compacted']) == (name == 'filter_compact')

@needs_accelerate
def test_lottery_ranks_identical_after_every_level(ranks):
    r0, r1 = ranks['lottery']
    _assert_fastai_ddp(r0); _assert_fastai_ddp(r1)
    for k, (f0, f1) in enumerate(zip(r0['fits'], r1['fits'])):
        _assert_same_state(f0['sd'], f1['sd'])
        _assert_same_state(f0['masks'], f1['masks'])
        assert f0['level'] == f1['level'] == k + 1 and f0['sparsity'] == f1['sparsity']
        assert 1 - f0['sparsity'] == pytest.approx(0.5 ** k, abs=0.02)  # density (1 - p)^k after fit k
        assert f0['history'] == f1['history'] and [h['level'] for h in f0['history']] == list(range(k + 1))

@needs_accelerate
def test_cluster_ranks_identical(ranks):
    r0, r1 = ranks['cluster']
    _assert_fastai_ddp(r0); _assert_fastai_ddp(r1)
    assert list(r0['records']) == [LAYER] and r1['records'] == {}  # rendered and clustered on rank 0 only
    assert r0['compacted'] == r1['compacted'] == {LAYER: 8} and r0['width'] == r1['width'] == 8
    _assert_same_state(r0['sd'], r1['sd'])

@needs_accelerate
def test_das_ranks_identical(ranks):
    "Grow and prune on the unwrapped module on every rank; the DDP wrapper accelerate made is rebuilt after each."
    r0, r1 = ranks['das']
    _assert_fastai_ddp(r0, epochs=2); _assert_fastai_ddp(r1, epochs=2)
    assert r0['sizes'] == r1['sizes'] and r0['history'] == r1['history'] and r0['initial'] == r1['initial']
    _assert_same_state(r0['sd'], r1['sd'])
    h = r0['history']
    before = [r0['initial']['sizes']] + [e['sizes'] for e in h[:-1]]
    assert all(e['grown_to'][k] == b[k] + 2 for e, b in zip(h, before) for k in b)  # grew by min_growth
    assert any(e['grown_to'][k] > e['sizes'][k] for e in h for k in e['sizes'])  # and pruned

@needs_accelerate
def test_distill_snapshot_is_rank0s(ranks):
    "The 'snapshot' teacher is rank 0's starting model on every rank (the student DDP makes every rank train)."
    r0, r1 = ranks['kd']
    _assert_fastai_ddp(r0); _assert_fastai_ddp(r1)
    assert any(not torch.equal(r0['start'][k], r1['start'][k]) for k in r0['start'])  # the ranks started different
    _assert_same_state(r0['teacher'], r1['teacher'])
    _assert_same_state(r0['teacher'], r0['start'])
    _assert_same_state(r0['sd'], r1['sd'])

@needs_accelerate
def test_cpu_needs_sync_bn_false_and_cpu_broadcast(ranks):
    """The exact errors of fastai's path on CPU with `sync_bn=True` (its default) and with its own `_broadcast` (a
    CPU-only torch build raises `AssertionError: Torch not compiled with CUDA enabled`)"""
    for r in ranks['sync_bn']:
        assert r and r.startswith('ValueError') and 'SyncBatchNorm layers only work with GPU modules' in r, r
    for r in ranks['cuda_broadcast']:
        assert r and r.startswith(('RuntimeError', 'AssertionError')) and ('NVIDIA driver' in r or 'not compiled with CUDA' in r), r

@needs_accelerate
@pytest.mark.slow
def test_cpu_needs_cpu_flag():
    "Without `cpu=True` accelerate wraps nothing on a machine without GPU and fastai's `DistributedTrainer` fails."
    if torch.cuda.is_available(): pytest.skip("this machine has a GPU: accelerate uses it")
    for r in launch('no_cpu_flag'):
        assert r['no_cpu_flag'] and r['no_cpu_flag'].startswith('AttributeError') and "object has no attribute 'device'" in r['no_cpu_flag']

@needs_accelerate
def test_example_input_of_reads_through_distributed_dl():
    "fastai's `DistributedDL.one_batch()` fails before the loader's first iteration; `example_input_of` reads the loader it wraps"
    from fastai.learner import Learner
    from fastai.distributed import DistributedDL
    from fastprune.data import digits_dls, example_input_of
    from fastprune.models import vgg_bn
    learn = Learner(digits_dls(size=8, bs=32), vgg_bn(widths=((8,), (16,)), fc=16))
    plain = example_input_of(learn)
    learn.dls.loaders = [DistributedDL(dl, rank=0, world_size=2) for dl in learn.dls.loaders]
    with pytest.raises(AttributeError, match=DDL_ONE_BATCH): learn.dls.valid.one_batch()
    assert torch.equal(example_input_of(learn), plain)

def test_fastai_distributed_needs_accelerate():
    "Without accelerate, fastai 2.8.12's `import fastai.distributed` fails (so `Learner.distrib_ctx` does not exist)."
    code = ("import sys; sys.modules['accelerate'] = None\n"  # what a missing package looks like to `import`
            "from fastai.learner import Learner\n"
            "try: import fastai.distributed\n"
            "except Exception as e: print(type(e).__name__, e, hasattr(Learner, 'distrib_ctx'))")
    p = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, OMP_NUM_THREADS='1', PYTHONWARNINGS='ignore'))
    assert p.stdout.strip() == "NameError name 'Accelerator' is not defined False", p.stdout + p.stderr[-2000:]


if __name__ == '__main__': _main(*sys.argv[1:])
