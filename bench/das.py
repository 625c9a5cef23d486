"""Cost and accuracy of dynamic auto-sizing: `DASGrowPruneCallback` training vs static training of the final sizes.

1. A DAS run (SELU net, `--width` units per layer, `--epochs` epochs) finds the final layer sizes.
2. Then, interleaved epoch by epoch so machine load affects all alike (the order rotates every epoch):
   - the same DAS run again: every run is seeded (`set_seed(0, reproducible=True)` before its data and model are
     built, each learner with its own `DataLoaders`), so it ends at exactly the sizes of step 1 (checked), and so
     does every process;
   - "Static A" (the paper's): a freshly initialised SELU net with the final sizes, same epochs, same optimizer;
   - "static at DAS widths": in epoch e, a static net with the widths the DAS net trains at during epoch e (its
     sizes after that epoch's growth), so DAS time / this time is what the callback itself costs (growth, penalty
     forward and backward, pruning, re-tracing), and static at DAS widths / Static A is what training the grown
     network costs, which is DAS's design, not overhead.
   Each epoch's *training* time is measured (process CPU time, robust on a shared machine with torch on one thread,
   and wall time); validation is not timed. The callback's own events are also timed (CPU time between callbacks
   of order 7 and 9, which bracket DAS's order 8): growth, the penalty in the loss or its proximal step after each
   optimizer step (the default), pruning.
Prints the median epoch-time ratios (targets: DAS / Static A <= 1.3, the callback's own factor <= 1.10) and both
validation accuracies.
Usage: OMP_NUM_THREADS=1 python bench/das.py [--data digits|mnist_png|fashion_mnist|cifar10] [--epochs 4] [--width 64]
                                            [--growth-pct 0.2] [--min-growth 20]
Growth and pruning cost a fixed time per epoch (and this bench pays the per-fit setup every epoch), so the
callback's share is larger on digits' 44-batch epochs than on longer ones. Reference runs: bench/results/das.txt
(digits, the current defaults); das_subsets.txt and das_growth.txt were made with the earlier defaults (penalty in
the loss, alpha 2e-5), before the proximal step.
"""
import argparse, random, statistics, sys, time, warnings
from contextlib import contextmanager, nullcontext
import numpy as np
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
from fastprune.surgery import grow_units
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

_EVENTS = ('before_train', 'after_loss', 'after_step', 'after_train')

class _Bracket(Callback):
    "CPU time spent between order 7 and order 9 in DAS's events (growth, penalty or proximal step, pruning), per event."
    order = 7
    def __init__(self): self.cpu = dict.fromkeys(_EVENTS, 0.)
    def _start(self): self.t = time.process_time()
    before_train = after_loss = after_step = after_train = _start

class _BracketEnd(Callback):
    order = 9
    def __init__(self, b): self.b = b
    def _stop(self, event): self.b.cpu[event] += time.process_time() - self.b.t
    def before_train(self): self._stop('before_train')
    def after_loss(self): self._stop('after_loss')
    def after_step(self): self._stop('after_step')
    def after_train(self): self._stop('after_train')

def _learner(make_dls, make_model, cbs=()):
    "A learner whose data and model are built right after seeding, so that runs repeat exactly."
    set_seed(0, reproducible=True)
    timer = _TrainTimer()
    learn = Learner(make_dls(), make_model(), metrics=accuracy, cbs=[timer, _TrainTimerEnd(timer), *cbs])
    return learn, timer

def _selu_of_sizes(sizes, x):
    "A freshly initialised `selu_net` whose auto-sized layers have `sizes`, initialised as `selu_net` does."
    w = min(sizes.values())
    m = selu_net(width=w)
    grow_units(m, {k: n - w for k, n in sizes.items() if n > w}, x)
    for mod in m.modules():
        if isinstance(mod, (nn.Conv2d, nn.Linear)): nn.init.kaiming_normal_(mod.weight, nonlinearity='linear'); nn.init.zeros_(mod.bias)
    return m

@contextmanager
def _own_rng():
    "Run a block without disturbing the global random states (so the DAS run repeats exactly around it)."
    states = random.getstate(), np.random.get_state(), torch.get_rng_state()
    try: yield
    finally: random.setstate(states[0]); np.random.set_state(states[1]); torch.set_rng_state(states[2])

def _fit1(learn, lr, own_rng=False):
    with learn.no_bar(), learn.no_logging(), (_own_rng() if own_rng else nullcontext()): learn.fit(1, lr)

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--data', default='digits'); ap.add_argument('--epochs', type=int, default=4)
    ap.add_argument('--width', type=int, default=64); ap.add_argument('--size', type=int, default=16)
    ap.add_argument('--per-class', type=int, default=100); ap.add_argument('--lr', type=float, default=1e-3)
    ap.add_argument('--growth-pct', type=float, default=0.2); ap.add_argument('--min-growth', type=int, default=20)
    a = ap.parse_args()
    warnings.filterwarnings('ignore')
    torch.set_num_threads(1)
    make_dls = lambda: (digits_dls(size=a.size, bs=32) if a.data == 'digits' else
                        folder_dls(shared_data(a.data), size=a.size, bs=32, max_per_class=a.per_class))
    def das_learner():
        cb, b = DASGrowPruneCallback(growth_pct=a.growth_pct, min_growth=a.min_growth), _Bracket()
        learn, timer = _learner(make_dls, lambda: selu_net(width=a.width), [b, _BracketEnd(b), cb])
        return learn, timer, cb, b
    # 1. find the final sizes (and the widths each epoch trains at)
    learn, _, cb, _ = das_learner()
    for e in range(a.epochs): _fit1(learn, a.lr)  # one fit per epoch, as in step 2
    final, trained_at = cb.history[-1]['sizes'], [h['grown_to'] for h in cb.history]
    print(f"DAS sizes after {a.epochs} epochs from width {a.width}: {final}")
    x = learn.dls.valid.one_batch()[0][:1].as_subclass(torch.Tensor)
    # 2. interleave: DAS again, Static A, and each epoch a static net at the widths DAS trains at in that epoch
    with _own_rng(): static, static_t = _learner(make_dls, lambda: _selu_of_sizes(final, x))
    das, das_t, cb, bracket = das_learner()
    grown_t = []
    for e in range(a.epochs):
        with _own_rng(): grown, t = _learner(make_dls, lambda: _selu_of_sizes(trained_at[e], x))
        runs = [lambda: _fit1(das, a.lr), lambda: _fit1(static, a.lr, True), lambda: _fit1(grown, a.lr, True)]
        for i in range(3): runs[(i + e) % 3]()
        grown_t += t.times
    with das.no_bar(), static.no_bar(): das_acc, static_acc = (float(l.validate()[1]) for l in (das, static))
    print(f"repeat run reproduces the sizes exactly: {cb.history[-1]['sizes'] == final} "
          f"(and the widths of every epoch: {[h['grown_to'] for h in cb.history] == trained_at})")
    med = lambda tt, i: statistics.median(t[i] for t in tt)
    for i, what in enumerate(('CPU', 'wall')):
        d, s, g = med(das_t.times, i), med(static_t.times, i), med(grown_t, i)
        print(f"{what:4s} s/epoch (median of {a.epochs}): DAS {d:.2f}  Static A {s:.2f}  static at DAS widths {g:.2f}  | "
              f"DAS/Static A {d/s:.2f}x (target <= 1.3) = width {g/s:.2f}x * callback {d/g:.2f}x (target <= 1.10)")
    paired = lambda num, den: statistics.median(n[0] / d[0] for n, d in zip(num, den))
    print(f"CPU ratios paired epoch by epoch (median): DAS/Static A {paired(das_t.times, static_t.times):.2f}x, "
          f"static at DAS widths/Static A {paired(grown_t, static_t.times):.2f}x, DAS/static at DAS widths {paired(das_t.times, grown_t):.2f}x")
    print(f"per epoch CPU s: DAS {[round(t[0], 2) for t in das_t.times]}; Static A {[round(t[0], 2) for t in static_t.times]}; "
          f"static at DAS widths {[round(t[0], 2) for t in grown_t]}")
    print(f"DAS callback events, CPU s per epoch: " + ', '.join(f"{k} {v / a.epochs:.3f}" for k, v in bracket.cpu.items())
          + " (the penalty's backward runs inside the backward pass and is in the callback ratio only)")
    print(f"DAS widths trained at (after growth) per epoch: {trained_at}")
    n_static = sum(p.numel() for p in static.model.parameters())
    print(f"accuracy after {a.epochs} epochs: DAS {das_acc:.4f} ({cb.history[-1]['n_params']:,} params); "
          f"Static A {static_acc:.4f} ({n_static:,} params)")

if __name__ == '__main__': main()
