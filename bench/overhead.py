"""Overhead of `SparsifyCallback`: one-cycle training of the VGG-style net on digits, with and without the callback.

Configurations (filter / weight granularity × local / global context) are run interleaved with plain training in
every repeat, so machine load affects all alike; the ratio is median(callback time) / median(plain time), for the
process CPU time (robust when other jobs share the cores; torch runs single-threaded) and for wall-clock time.
Both carry the noise of a shared machine (a few %), so the CPU time spent inside the callback's own events
(`self %`, relative to the plain fit) is measured as well: it is the overhead free of run-to-run noise.
Usage: OMP_NUM_THREADS=1 python bench/overhead.py [--epochs 2] [--repeats 3]
"""
import argparse, contextlib, io, statistics, sys, time
from pathlib import Path
import torch
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from fastai.learner import Learner
from fastai.callback.schedule import fit_one_cycle  # noqa: F401  (patches Learner.fit_one_cycle)
from fastai.torch_core import set_seed
from fastprune.data import digits_dls
from fastprune.models import vgg_bn
from fastprune.callbacks.sparsify import SparsifyCallback
from fastprune.surgery.graph import trace

CONFIGS = {'plain': None, 'weight/local': ('weight', 'local'), 'weight/global': ('weight', 'global'),
           'filter/local': ('filter', 'local'), 'filter/global': ('filter', 'global')}

class _TimedSparsify(SparsifyCallback):
    "`SparsifyCallback` that adds up the CPU time spent in its own events."
    self_time = 0.
    def __call__(self, event_name):
        t = time.process_time()
        try: return super().__call__(event_name)
        finally: self.self_time += time.process_time() - t

def timed_fit(dls, cfg, epochs, sparsity):
    "(cpu s, wall s, cpu s inside the callback) of one `fit_one_cycle`."
    set_seed(0)
    learn = Learner(dls, vgg_bn())
    cbs = [] if cfg is None else [_TimedSparsify(sparsity, *cfg)]
    with learn.no_bar(), learn.no_logging(), contextlib.redirect_stdout(io.StringIO()):
        t, c = time.perf_counter(), time.process_time()
        learn.fit_one_cycle(epochs, 3e-3, cbs=cbs)
        return time.process_time() - c, time.perf_counter() - t, (cbs[0].self_time if cbs else 0.)

def main(epochs=2, repeats=3, sparsity=0.7, size=32):
    torch.set_num_threads(1)
    dls = digits_dls(size=size, bs=64)
    timed_fit(dls, None, 1, sparsity)  # warm-up, and one-time imports (the tracer loads timm) outside the timings
    trace(vgg_bn(), dls.one_batch()[0][:2].as_subclass(torch.Tensor))
    times = {k: [] for k in CONFIGS}
    for r in range(repeats):
        for name, cfg in CONFIGS.items(): times[name].append(timed_fit(dls, cfg, epochs, sparsity))
        print(f"repeat {r + 1}/{repeats} (cpu s): " + ', '.join(f"{k} {v[-1][0]:.2f}" for k, v in times.items()), flush=True)
    med = {k: [statistics.median(t[i] for t in v) for i in (0, 1, 2)] for k, v in times.items()}
    print(f"\nvgg_bn on digits {size}x{size}, {len(dls.train)} batches/epoch, {epochs} epochs, sparsity {sparsity}, "
          f"one_cycle schedule, {repeats} interleaved repeats (medians)")
    print(f"{'config':<15}{'cpu s':>8}{'cpu ratio':>11}{'wall s':>9}{'wall ratio':>12}{'self %':>8}")
    for k, (c, w, own) in med.items():
        print(f"{k:<15}{c:>8.2f}{c / med['plain'][0]:>10.3f}x{w:>9.2f}{w / med['plain'][1]:>11.3f}x"
              f"{100 * own / med['plain'][0]:>7.1f}%")

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--epochs', type=int, default=2); p.add_argument('--repeats', type=int, default=3)
    p.add_argument('--sparsity', type=float, default=0.7); p.add_argument('--size', type=int, default=32)
    main(**vars(p.parse_args()))
