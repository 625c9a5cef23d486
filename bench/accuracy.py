"""Accuracy after pruning with `SparsifyCallback` at 50 / 70 / 90 % sparsity, side by side with fasterai.

Weight and filter granularity, magnitude (`large_final`) and `movement` criteria, one-cycle schedule, local context,
conv layers only (fasterai's default layer type; `exclude=[]` so both libraries prune exactly the same layers), on
Fashion-MNIST and CIFAR-10 from the shared data archives, 3 seeds, mean ± std of the final validation accuracy.

Subsampling (to keep the default run under 30 minutes on 2 CPU cores): `--n-train` images per class for training
(default 100, i.e. 1,000 images) and `--n-valid` per class from the official test split (default 50, i.e. 500),
drawn with a fixed seed and decoded once into memory; `--epochs` (default 3) of `fit_one_cycle` on the VGG-style
net of `fastprune.models.vgg_bn`. The runs are independent, so `--workers` processes (default 2, one thread each)
share them out. `--quick` runs a reduced grid (see below).

fasterai is never a dependency of fastprune: the benchmark looks for it in `--fasterai-path` (default
/work/fasterai_pkg, installed there with `pip install --target /work/fasterai_pkg fasterai einops --no-deps`) and
skips that column if it cannot be imported.
Usage: OMP_NUM_THREADS=1 python bench/accuracy.py [--quick]
"""
import argparse, contextlib, io, multiprocessing, random, resource, statistics, sys, time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
import numpy as np
import torch
from torch import nn
from PIL import Image
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from fastai.data.core import DataLoaders, DataLoader
from fastai.learner import Learner
from fastai.metrics import accuracy
from fastai.callback.schedule import fit_one_cycle  # noqa: F401  (patches Learner.fit_one_cycle)
from fastai.torch_core import set_seed
from fastprune.data import shared_data
from fastprune.models import vgg_bn
from fastprune.callbacks.sparsify import SparsifyCallback

DATASETS = {'fashion_mnist': ('train', 'test', 1), 'cifar10': ('train', 'test', 3)}

def load_subset(name, n_train, n_valid, seed=0):
    "In-memory DataLoaders parts: `n_train` / `n_valid` images per class, normalised with the training statistics."
    root = shared_data(name)
    train, valid, ch = DATASETS[name]
    rng = random.Random(seed)
    def split(folder, n):
        xs, ys = [], []
        for c, d in enumerate(sorted(p for p in (root/folder).iterdir() if p.is_dir())):
            files = sorted(d.iterdir()); rng.shuffle(files)
            for f in files[:n]:
                xs.append(np.asarray(Image.open(f).convert('L' if ch == 1 else 'RGB'), dtype=np.float32) / 255.)
                ys.append(c)
        x = torch.tensor(np.stack(xs)); x = x[:, None] if ch == 1 else x.permute(0, 3, 1, 2)
        return x, torch.tensor(ys)
    (xt, yt), (xv, yv) = split(train, n_train), split(valid, n_valid)
    mean, std = xt.mean((0, 2, 3), keepdim=True), xt.std((0, 2, 3), keepdim=True)
    return ((xt - mean) / std, yt), ((xv - mean) / std, yv), ch

def make_dls(data, bs=64):
    (xt, yt), (xv, yv), _ = data
    return DataLoaders(DataLoader(list(zip(xt, yt)), bs=bs, shuffle=True, drop_last=True),
                       DataLoader(list(zip(xv, yv)), bs=256))

def conv_sparsity(model):
    ws = [m.weight for m in model.modules() if isinstance(m, nn.Conv2d)]
    return sum(int((w == 0).sum()) for w in ws) / sum(w.numel() for w in ws)

def import_fasterai(path):
    sys.path.insert(0, path)
    try:
        import fasterai.sparse.all as fa, fasterai.core.all as fc
        return fa, fc
    except Exception as e:
        print(f"fasterai not available from {path}: {type(e).__name__}: {e}")
        return None

def run(data, seed, epochs, lib=None, sparsity=None, granularity=None, criterion=None, fasterai=None):
    "Final validation accuracy and conv sparsity of one training run."
    set_seed(seed, reproducible=True)
    dls = make_dls(data)
    learn = Learner(dls, vgg_bn(in_ch=data[2]), loss_func=nn.CrossEntropyLoss(), metrics=accuracy)
    cbs = []
    if lib == 'fastprune':
        cbs = [SparsifyCallback(sparsity, granularity, 'local', criterion, 'one_cycle', layer_type=nn.Conv2d, exclude=[])]
    elif lib == 'fasterai':
        fa, fc = fasterai
        cbs = [fa.SparsifyCallback(sparsity, granularity, 'local', getattr(fc, criterion), fc.one_cycle, layer_type=nn.Conv2d)]
    with learn.no_bar(), learn.no_logging(), contextlib.redirect_stdout(io.StringIO()):
        learn.fit_one_cycle(epochs, 1e-2, cbs=cbs)
        return float(learn.validate()[1]), conv_sparsity(learn.model)

_worker = {}  # per worker process: the fasterai modules and the decoded datasets

def _init_worker(fasterai_path, n_train, n_valid):
    torch.set_num_threads(1)
    _worker.update(fasterai=import_fasterai(fasterai_path) if fasterai_path else None, n=(n_train, n_valid), data={})

def _run_task(task):
    "One run in a worker process: `task` is (dataset, seed, epochs, lib, sparsity, granularity, criterion)."
    ds, seed, epochs, *how = task
    if ds not in _worker['data']: _worker['data'][ds] = load_subset(ds, *_worker['n'])
    return run(_worker['data'][ds], seed, epochs, *how, fasterai=_worker['fasterai'])

def fmt(vals): return f"{100 * statistics.mean(vals):5.1f} ± {100 * (statistics.stdev(vals) if len(vals) > 1 else 0):3.1f}"

def main(quick=False, epochs=3, n_train=100, n_valid=50, seeds=3, workers=2, fasterai_path='/work/fasterai_pkg',
         datasets=tuple(DATASETS)):
    sparsities, granularities, criteria = (0.5, 0.7, 0.9), ('weight', 'filter'), ('large_final', 'movement')
    bad = [d for d in datasets if d not in DATASETS]
    if bad: raise ValueError(f"Unknown dataset(s) {bad}; valid: {list(DATASETS)}")
    if quick: epochs, n_train, n_valid, seeds, sparsities = 2, 100, 50, 2, (0.5, 0.9)
    libs = ['fastprune'] + (['fasterai'] if import_fasterai(fasterai_path) else [])
    grid = [(g, c, sp) for g in granularities for c in criteria for sp in sparsities]
    tasks = [(ds, s, epochs, None, None, None, None) for ds in datasets for s in range(seeds)]
    tasks += [(ds, s, epochs, l, sp, g, c) for ds in datasets for g, c, sp in grid for l in libs for s in range(seeds)]
    print(f"epochs {epochs}, {n_train}/{n_valid} train/valid images per class, seeds {list(range(seeds))}, libs {libs}, "
          f"{len(tasks)} runs on {workers} worker processes (1 thread each)", flush=True)
    t0 = time.time()
    ctx = multiprocessing.get_context('spawn')
    with ProcessPoolExecutor(workers, ctx, _init_worker, (fasterai_path if 'fasterai' in libs else None, n_train, n_valid)) as ex:
        res = dict(zip(tasks, ex.map(_run_task, tasks)))
    rows = []
    for ds in datasets:
        dense = [res[(ds, s, epochs, None, None, None, None)][0] for s in range(seeds)]
        print(f"\n{ds}: dense {fmt(dense)} %")
        print(f"{'granularity':<12}{'criterion':<12}{'target':>7} | " + ' | '.join(f"{l + ' acc %':>15}{'sparsity':>9}" for l in libs))
        for g, c, sp in grid:
            r = {l: [res[(ds, s, epochs, l, sp, g, c)] for s in range(seeds)] for l in libs}
            print(f"{g:<12}{c:<12}{sp:>7.0%} | " + ' | '.join(
                f"{fmt([a for a, _ in r[l]]):>15}{statistics.mean(z for _, z in r[l]):>9.1%}" for l in libs))
            rows += [(ds, g, c, sp, l, s, a, z) for l in libs for s, (a, z) in enumerate(r[l])]
    out = Path(__file__).parent/'results'; out.mkdir(exist_ok=True)
    tag = ('_quick' if quick else '') + ('' if list(datasets) == list(DATASETS) else '_' + '_'.join(datasets))
    with open(out/f"accuracy{tag}.csv", 'w') as f:
        f.write('dataset,granularity,criterion,target,lib,seed,accuracy,conv_sparsity\n')
        for r in rows: f.write(','.join(map(str, r)) + '\n')
    cpu = resource.getrusage(resource.RUSAGE_CHILDREN)  # the workers, joined when the pool shut down
    print(f"\ntotal {(time.time() - t0) / 60:.1f} min wall on {workers} workers, {(cpu.ru_utime + cpu.ru_stime) / 60:.1f} "
          f"CPU-min in the workers; per-run results in {out}")

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--quick', action='store_true', help='2 epochs, 100/50 images per class, 2 seeds, 50 and 90 %% only')
    p.add_argument('--epochs', type=int, default=3); p.add_argument('--n-train', type=int, default=100)
    p.add_argument('--n-valid', type=int, default=50); p.add_argument('--seeds', type=int, default=3)
    p.add_argument('--workers', type=int, default=2, help='worker processes, one thread each')
    p.add_argument('--fasterai-path', default='/work/fasterai_pkg')
    p.add_argument('--datasets', nargs='+', default=list(DATASETS), help=f'subset of {list(DATASETS)}')
    main(**vars(p.parse_args()))
