"""Pruning for filter variety vs plain criteria, as in Hubens et al.'s Tables 1-2: l1 vs cluster-l1 and movement vs
cluster-movement at 60 / 70 / 80 % filter sparsity, mean ± std over seeds.

Setting (shrunk to fit a CPU): the CIFAR-10 ResNet-20 pretrained on the full training set (shared weights), then
pruned and fine-tuned with one `fit_one_cycle` on a class-balanced subsample of CIFAR-10 (shared JPEG archive),
accuracy on a class-balanced subsample of the test set. The pruned layers are the nine inner convs of the residual
blocks (`layerX.Y.conv1`; the others feed residual sums and share their channels). All four methods use the
same layer-by-layer schedule: the fit is split into one segment per layer, each layer is pruned half-way through
its segment (so `movement` has movement to measure) and fine-tuned for the rest. The plain methods keep the
top-scoring filters of the layer; the cluster methods keep the best filter of each of k = round((1 − s)·n) clusters.
Encoder: no ImageNet AlexNet weights offline, so signatures are embedded by the dense pretrained ResNet-20's own
conv trunk (a frozen copy; spatially averaged 64-d features) — a CIFAR-trained feature space, stated here
because the results depend on it.

Usage (from the repo root): PYTHONPATH=. python bench/cluster_accuracy.py [--quick]
"""
import os, io, time, copy, random
from contextlib import redirect_stdout
os.environ.setdefault('OMP_NUM_THREADS', '1')
import numpy as np
import torch
from torch import nn
from fastcore.script import call_parse
from fastai.learner import Learner
from fastai.metrics import accuracy
from fastai.callback.schedule import fit_one_cycle
from fastai.torch_core import set_seed
from fastprune.data import folder_dls, shared_data, resnet_weights
from fastprune.models import resnet20
from fastprune.core.schedules import one_shot
from fastprune.callbacks.cluster import ClusterPruneCallback

INNER = [f'layer{i}.{j}.conv1' for i in (1, 2, 3) for j in range(3)]

class _PlainLayerwise(ClusterPruneCallback):
    "The same layer-by-layer schedule and masks, but the layer keeps its top-scoring filters (no clustering)"
    def _cluster_prune(self, layer, frac):
        self.sparsifier.sparsify({layer: self.sparsity * frac})
        self.sparsifier.apply_masks()

def _trunk(model):
    "The conv trunk of a CIFAR ResNet (everything before pooling and the classifier), frozen copy"
    m = copy.deepcopy(model)
    return nn.Sequential(m.conv1, m.bn1, nn.ReLU(), m.layer1, m.layer2, m.layer3).eval().requires_grad_(False)

def _run(method, sparsity, seed, dls, encoder, epochs, lr, render_kw):
    set_seed(seed, reproducible=True)
    for dl in dls.loaders: dl.rng = random.Random(seed)  # same batches for every method of a seed (paired runs)
    learn = Learner(dls, resnet20(resnet_weights(20)), metrics=accuracy)
    criteria = 'large_final' if method.endswith('l1') else 'movement'
    cls = ClusterPruneCallback if method.startswith('cluster') else _PlainLayerwise
    cb = cls(sparsity, criteria=criteria, layers=INNER, schedule=one_shot(start_pct=0.5), encoder=encoder,
             render_kw=render_kw, seed=seed)
    with learn.no_bar(), learn.no_logging(), redirect_stdout(io.StringIO()):  # the callbacks' per-layer tables
        learn.fit_one_cycle(epochs, lr, cbs=cb)
        acc = learn.validate()[1]
    return acc, [learn.model.get_submodule(l).out_channels for l in INNER]

@call_parse
def main(quick:bool=False, # 1 seed, small subsample, short fit: a smoke run that shows the trend at best
         per_class:int=None, # images per class in each split (default 100 quick, 500 full)
         epochs:int=None, # epochs of the pruning fit (default 2 quick, 9 full: one per layer)
         seeds:int=None, # number of seeds (default 1 quick, 3 full)
         steps:int=None, # Adam steps per signature (default 16 quick, 64 full)
         lr:float=2e-3, # peak learning rate of the pruning fit
        ):
    "Accuracy after pruning ResNet-20 on CIFAR-10 with l1, cluster-l1, movement, cluster-movement"
    per_class = per_class or (100 if quick else 500)
    epochs, n_seeds = epochs or (2 if quick else 9), seeds or (1 if quick else 3)
    steps = steps or (16 if quick else 64)
    render_kw = dict(size=32, steps=steps, transforms=False)
    dls = folder_dls(shared_data('cifar10'), bs=64, max_per_class=per_class)
    encoder = _trunk(resnet20(resnet_weights(20)))
    dense = Learner(dls, resnet20(resnet_weights(20)), metrics=accuracy)
    with dense.no_bar(), dense.no_logging(): dense_acc = dense.validate()[1]
    print(f"CIFAR-10, {per_class}/class train and test images, ResNet-20 pretrained: dense accuracy {dense_acc:.4f}")
    print(f"fit_one_cycle({epochs}, {lr}) per run, 9 inner convs pruned layer by layer, render {render_kw}, "
          f"{n_seeds} seed(s)")
    methods = ('l1', 'cluster-l1', 'movement', 'cluster-movement')
    results = {}
    for sparsity in (0.6, 0.7, 0.8):
        for seed in range(n_seeds):
            for method in methods:
                t = time.perf_counter()
                acc, kept = _run(method, sparsity, seed, dls, encoder, epochs, lr, render_kw)
                results.setdefault((sparsity, method), []).append(acc)
                print(f"  sparsity {sparsity:.0%} seed {seed} {method:<17} acc {acc:.4f}  kept {kept}  "
                      f"({time.perf_counter() - t:.0f}s)", flush=True)
    print(f"\n{'sparsity':<10}" + ''.join(f'{m:>20}' for m in methods))
    for sparsity in (0.6, 0.7, 0.8):
        cells = [np.array(results[(sparsity, m)]) * 100 for m in methods]
        print(f"{sparsity:<10.0%}" + ''.join(f"{a.mean():>13.2f} ± {a.std():<4.2f}" for a in cells))
