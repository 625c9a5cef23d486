"""Cost and accuracy of dynamic auto-sizing: `DASGrowPruneCallback` training vs static training of the final sizes.

1. A DAS run (SELU net, `--width` units per layer, `--epochs` epochs) finds the final layer sizes.
2. Then, interleaved epoch by epoch so machine load affects both alike: the same DAS run again (same seed) and a
   static net with those final sizes, freshly initialised ("Static A" of the paper), same epochs, same optimizer.
   (The repeated DAS run can end at slightly different sizes: the static epochs in between change the random
   state of the data shuffling.) Each epoch's *training* time is measured (process CPU time, robust on a shared machine with torch on one thread,
   and wall time); validation is not timed. The DAS epoch includes the growth at its start, the penalty on every
   batch and the pruning at its end.
Prints the median epoch-time ratio DAS / static (target <= 1.3) and both validation accuracies.
Usage: OMP_NUM_THREADS=1 python bench/das.py [--data digits|mnist_png|fashion_mnist|cifar10] [--epochs 4] [--width 64]
"""
import argparse, copy, statistics, sys, time, warnings
from pathlib import Path
import torch
from torch import nn
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from fastai.learner import Learner
from fastai.callback.core import Callback
from fastai.metrics import accuracy
from fastai.torch_core import set_seed
import fastai.callback.progress  # noqa: F401  (Learner.no_bar)
from fastprune.data import digits_dls, folder_dls, shared_data
from fastprune.models import selu_net
from fastprune.callbacks.das import DASGrowPruneCallback

class _TrainTimer(Callback):
    "Starts the clock of each epoch's training phase before every other callback (so before DAS growth)."
    order = -100
    def __init__(self): self.times = []
    def before_train(self): self.t0 = (time.process_time(), time.perf_counter())

class _TrainTimerEnd(Callback):
    "Stops `timer`'s clock after every other callback (so after DAS pruning)."
    order = 100
    def __init__(self, timer): self.timer = timer
    def after_train(self):
        c, w = self.timer.t0
        self.timer.times.append((time.process_time() - c, time.perf_counter() - w))

def _learner(dls, model, cbs=()):
    timer = _TrainTimer()
    learn = Learner(dls, model, metrics=accuracy, cbs=[timer, _TrainTimerEnd(timer), *cbs])
    return learn, timer

def _static_like(model, seed):
    "A copy of `model`'s architecture, re-initialised as `selu_net` does."
    m = copy.deepcopy(model)
    torch.manual_seed(seed)
    for mod in m.modules():
        if isinstance(mod, (nn.Conv2d, nn.Linear)): nn.init.kaiming_normal_(mod.weight, nonlinearity='linear'); nn.init.zeros_(mod.bias)
    return m

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--data', default='digits'); ap.add_argument('--epochs', type=int, default=4)
    ap.add_argument('--width', type=int, default=64); ap.add_argument('--size', type=int, default=16)
    ap.add_argument('--per-class', type=int, default=100); ap.add_argument('--lr', type=float, default=1e-3)
    a = ap.parse_args()
    warnings.filterwarnings('ignore')
    dls = (digits_dls(size=a.size, bs=32) if a.data == 'digits' else
           folder_dls(shared_data(a.data), size=a.size, bs=32, max_per_class=a.per_class))
    def das_learner():
        set_seed(0)
        cb = DASGrowPruneCallback()
        return (*_learner(dls, selu_net(width=a.width)), cb)
    # 1. find the final sizes
    learn, _, cb = das_learner()
    with learn.no_bar(), learn.no_logging(): learn.fit(a.epochs, a.lr, cbs=cb)
    final = learn.model
    print(f"DAS sizes after {a.epochs} epochs from width {a.width}: {cb.history[-1]['sizes']}")
    # 2. interleave: DAS again, static net of the final sizes
    das, das_t, cb = das_learner()
    static, static_t = _learner(dls, _static_like(final, 1))
    das.add_cb(cb)
    for e in range(a.epochs):
        for learn in (das, static) if e % 2 == 0 else (static, das):
            with learn.no_bar(), learn.no_logging(): learn.fit(1, a.lr)
    with das.no_bar(), static.no_bar(): das_acc, static_acc = (float(l.validate()[1]) for l in (das, static))
    n_static = sum(p.numel() for p in static.model.parameters())
    for i, what in enumerate(('CPU', 'wall')):
        d, s = (statistics.median(t[i] for t in tt.times) for tt in (das_t, static_t))
        print(f"{what:4s} s/epoch (median of {a.epochs}): DAS {d:.2f}  static {s:.2f}  ratio {d/s:.2f}x (target <= 1.3)")
    print(f"DAS per epoch CPU s: {[round(t[0], 2) for t in das_t.times]}; static: {[round(t[0], 2) for t in static_t.times]}")
    print(f"DAS peak sizes (after growth) per epoch: {[h['grown_to'] for h in cb.history]}")
    print(f"accuracy after {a.epochs} epochs: DAS {das_acc:.4f} ({cb.history[-1]['n_params']:,} params, sizes {cb.history[-1]['sizes']}); "
          f"static A {static_acc:.4f} ({n_static:,} params)")

if __name__ == '__main__': main()
