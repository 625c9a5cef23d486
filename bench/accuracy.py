"""Accuracy after pruning with `SparsifyCallback` at 50 / 70 / 90 % sparsity, side by side with fasterai.

Weight and filter granularity, magnitude (`large_final`) and `movement` criteria, one-cycle schedule, local context,
conv layers only (fasterai's default layer type; `exclude=[]` so both libraries prune exactly the same layers), on
Fashion-MNIST and CIFAR-10 from the shared data archives, 3 seeds, mean ± std of the final validation accuracy.

Subsampling (to keep the default run under 30 minutes on 2 CPU cores): `--n-train` images per class for training
(default 120, i.e. 1,200 images) and `--n-valid` per class from the official test split (default 100, i.e. 1,000),
drawn with a fixed seed and decoded once into memory; `--epochs` (default 3) of `fit_one_cycle` on the VGG-style
net of `fastprune.models.vgg_bn`. `--quick` runs a reduced grid (see below).

fasterai is never a dependency of fastprune: the benchmark looks for it in `--fasterai-path` (default
/work/fasterai_pkg, installed there with `pip install --target /work/fasterai_pkg fasterai einops --no-deps`) and
skips that column if it cannot be imported.
Usage: OMP_NUM_THREADS=1 python bench/accuracy.py [--quick]
"""
import argparse, contextlib, io, random, statistics, sys, time
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

def fmt(vals): return f"{100 * statistics.mean(vals):5.1f} ± {100 * (statistics.stdev(vals) if len(vals) > 1 else 0):3.1f}"

def main(quick=False, epochs=3, n_train=120, n_valid=100, seeds=3, fasterai_path='/work/fasterai_pkg', datasets=tuple(DATASETS)):
    torch.set_num_threads(1)
    sparsities, granularities, criteria = (0.5, 0.7, 0.9), ('weight', 'filter'), ('large_final', 'movement')
    bad = [d for d in datasets if d not in DATASETS]
    if bad: raise ValueError(f"Unknown dataset(s) {bad}; valid: {list(DATASETS)}")
    if quick: epochs, n_train, n_valid, seeds, sparsities = 2, 100, 50, 2, (0.5, 0.9)
    fasterai = import_fasterai(fasterai_path)
    libs = ['fastprune'] + (['fasterai'] if fasterai else [])
    t0, rows = time.time(), []
    print(f"epochs {epochs}, {n_train}/{n_valid} train/valid images per class, seeds {list(range(seeds))}, libs {libs}")
    for ds in datasets:
        data = load_subset(ds, n_train, n_valid)
        dense = [run(data, s, epochs)[0] for s in range(seeds)]
        print(f"\n{ds}: dense {fmt(dense)} %  ({time.time() - t0:.0f}s)", flush=True)
        print(f"{'granularity':<12}{'criterion':<12}{'target':>7} | " + ' | '.join(f"{l + ' acc %':>15}{'sparsity':>9}" for l in libs))
        for g in granularities:
            for c in criteria:
                for sp in sparsities:
                    res = {l: [run(data, s, epochs, l, sp, g, c, fasterai) for s in range(seeds)] for l in libs}
                    print(f"{g:<12}{c:<12}{sp:>7.0%} | " + ' | '.join(
                        f"{fmt([a for a, _ in res[l]]):>15}{statistics.mean(z for _, z in res[l]):>9.1%}" for l in libs),
                        flush=True)
                    rows += [(ds, g, c, sp, l, s, a, z) for l in libs for s, (a, z) in enumerate(res[l])]
    out = Path(__file__).parent/'results'; out.mkdir(exist_ok=True)
    tag = ('_quick' if quick else '') + ('' if list(datasets) == list(DATASETS) else '_' + '_'.join(datasets))
    with open(out/f"accuracy{tag}.csv", 'w') as f:
        f.write('dataset,granularity,criterion,target,lib,seed,accuracy,conv_sparsity\n')
        for r in rows: f.write(','.join(map(str, r)) + '\n')
    print(f"\ntotal {time.time() - t0:.0f}s wall, {time.process_time():.0f}s CPU; per-run results in {out}")

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--quick', action='store_true', help='2 epochs, 100/50 images per class, 2 seeds, 50 and 90 %% only')
    p.add_argument('--epochs', type=int, default=3); p.add_argument('--n-train', type=int, default=120)
    p.add_argument('--n-valid', type=int, default=100); p.add_argument('--seeds', type=int, default=3)
    p.add_argument('--fasterai-path', default='/work/fasterai_pkg')
    p.add_argument('--datasets', nargs='+', default=list(DATASETS), help=f'subset of {list(DATASETS)}')
    main(**vars(p.parse_args()))
