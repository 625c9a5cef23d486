"""Pruning for filter variety vs plain criteria, as in Hubens et al.'s Tables 1-2: l1 vs cluster-l1 and movement vs
cluster-movement at 60 / 70 / 80 % filter sparsity, mean ± std over seeds.

Setting (shrunk to fit a shared CPU): the CIFAR-10 ResNet-20 pretrained on the full training set (shared weights,
dense accuracy ~80% on the shared JPEG test images), pruned and fine-tuned with one `fit_one_cycle` on a small
class-balanced subsample of CIFAR-10 (`--per-class` images per class for training and the same number per class of the
test set for accuracy; default 50, i.e. 500 + 500 images: the test accuracy of one run has a binomial standard error
of about 2 points, but all methods of a seed see the same images and batches, so they are paired). Pruned layers: by
default the inner convs of the last stage (`layer3.{0,1,2}.conv1`, 64 filters each); `--stages 123` prunes all nine
inner convs (the others feed residual sums and share their channels). Pruning all nine by 60% or more leaves ResNet-20
at chance (9%) before fine-tuning, and a few hundred fine-tuning steps on a CPU bring it back only to ~40%. The last
stage alone is not robust either (l1 at 60%: 19% before fine-tuning); with the default fit the pruned nets end at
17-46% against 80% for the dense net fine-tuned the same way (one run, shared CPU: 60% l1 41.4 ± 0.9, cluster-l1 45.7
± 3.4, movement 40.7 ± 9.3, cluster-movement 40.7 ± 3.9; 70%: 26.7 / 25.2 / 31.6 / 27.3; 80%: 20.5 / 17.1 / 22.9 /
22.5), so differences between methods are within seed noise and say little about the paper's claim, which needs a full
retraining budget. All four methods use the same layer-by-layer schedule: the fit is split into one segment per layer,
each layer is pruned `--start-pct` of the way into its segment (so `movement` has movement to measure) and fine-tuned
for the rest. The plain methods keep the top-scoring filters of the layer; the cluster methods keep the best filter of
each of k = round((1 − s)·n) clusters. Signatures: `--size`-pixel images, `--steps` Adam steps, no transforms.
Encoder: no ImageNet AlexNet weights offline, so signatures are embedded by the dense pretrained ResNet-20's own conv
trunk (a frozen copy; spatially averaged 64-d features), a CIFAR-trained feature space, stated here because the
results depend on it. Reference rows: the dense net, and the dense net fine-tuned with the same fit.

Usage (from the repo root): PYTHONPATH=. python bench/cluster_accuracy.py [--quick] [--stages 123] [--per-class 50]
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


class _PlainLayerwise(ClusterPruneCallback):
    "The same layer-by-layer schedule and masks, but the layer keeps its top-scoring filters (no clustering)"
    def _cluster_prune(self, layer, frac):
        self.sparsifier.sparsify({layer: self.sparsity * frac})
        self.sparsifier.apply_masks()

def _trunk(model):
    "The conv trunk of a CIFAR ResNet (everything before pooling and the classifier), frozen copy"
    m = copy.deepcopy(model)
    return nn.Sequential(m.conv1, m.bn1, nn.ReLU(), m.layer1, m.layer2, m.layer3).eval().requires_grad_(False)

def _run(method, sparsity, seed, dls, encoder, epochs, lr, layers, start_pct, render_kw):
    "Accuracy and layer widths after the fit; `method` None: the dense net fine-tuned with the same fit"
    set_seed(seed, reproducible=True)
    for dl in dls.loaders: dl.rng = random.Random(seed)  # same batches for every method of a seed (paired runs)
    learn = Learner(dls, resnet20(resnet_weights(20)), metrics=accuracy)
    cbs = []
    if method is not None:
        criteria = 'large_final' if method.endswith('l1') else 'movement'
        cls = ClusterPruneCallback if method.startswith('cluster') else _PlainLayerwise
        cbs = cls(sparsity, criteria=criteria, layers=layers, schedule=one_shot(start_pct=start_pct), encoder=encoder,
                  render_kw=render_kw, seed=seed)
    with learn.no_bar(), learn.no_logging(), redirect_stdout(io.StringIO()):  # the callbacks' per-layer tables
        learn.fit_one_cycle(epochs, lr, cbs=cbs)
        acc = learn.validate()[1]
    return acc, [learn.model.get_submodule(l).out_channels for l in layers]

@call_parse
def main(quick:bool=False, # 1 seed, 20 images per class, 4-step signatures: a smoke run
         stages:str='3', # ResNet stages whose inner convs (`layerS.{0,1,2}.conv1`) are pruned: '3', '23', '123'
         per_class:int=None, # images per class in each split (default 20 quick, 50 full)
         epochs:int=None, # epochs of the pruning fit (default: one per pruned layer)
         seeds:int=None, # number of seeds (default 1 quick, 3 full)
         steps:int=None, # Adam steps per signature (default 4 quick, 16 full)
         size:int=16, # side of the signature images
         start_pct:float=0.3, # where in its segment of the fit each layer is pruned
         lr:float=1e-3, # peak learning rate of the pruning fit
        ):
    "Accuracy after pruning ResNet-20 on CIFAR-10 with l1, cluster-l1, movement, cluster-movement"
    if not stages or set(stages) - set('123'): raise ValueError(f"stages={stages!r}: digits among '1', '2', '3'")
    layers = [f'layer{i}.{j}.conv1' for i in sorted(set(stages)) for j in range(3)]
    per_class = per_class or (20 if quick else 50)
    epochs, n_seeds = epochs or len(layers), seeds or (1 if quick else 3)
    steps = steps or (4 if quick else 16)
    render_kw = dict(size=size, steps=steps, transforms=False)
    dls = folder_dls(shared_data('cifar10'), bs=64, max_per_class=per_class)
    encoder = _trunk(resnet20(resnet_weights(20)))
    dense = Learner(dls, resnet20(resnet_weights(20)), metrics=accuracy)
    with dense.no_bar(), dense.no_logging(): dense_acc = dense.validate()[1]
    print(f"CIFAR-10, {per_class}/class train and test images, ResNet-20 pretrained: dense accuracy {dense_acc:.4f}")
    print(f"fit_one_cycle({epochs}, {lr}) per run, layers {layers} pruned one per segment at {start_pct:.0%} of it, "
          f"render {render_kw}, {n_seeds} seed(s)", flush=True)
    tuned = [_run(None, 0, seed, dls, encoder, epochs, lr, layers, start_pct, render_kw)[0] for seed in range(n_seeds)]
    print(f"dense fine-tuned with the same fit: {np.mean(tuned) * 100:.2f} ± {np.std(tuned) * 100:.2f}", flush=True)
    methods = ('l1', 'cluster-l1', 'movement', 'cluster-movement')
    results = {}
    for sparsity in (0.6, 0.7, 0.8):
        for seed in range(n_seeds):
            for method in methods:
                t = time.perf_counter()
                acc, kept = _run(method, sparsity, seed, dls, encoder, epochs, lr, layers, start_pct, render_kw)
                results.setdefault((sparsity, method), []).append(acc)
                print(f"  sparsity {sparsity:.0%} seed {seed} {method:<17} acc {acc:.4f}  kept {kept}  "
                      f"({time.perf_counter() - t:.0f}s)", flush=True)
    print(f"\naccuracy %, mean ± std over {n_seeds} seed(s)\n{'sparsity':<10}" + ''.join(f'{m:>20}' for m in methods))
    for sparsity in (0.6, 0.7, 0.8):
        cells = [np.array(results[(sparsity, m)]) * 100 for m in methods]
        print(f"{sparsity:<10.0%}" + ''.join(f"{a.mean():>13.2f} ± {a.std():<4.2f}" for a in cells))
