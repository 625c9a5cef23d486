"""Do DAS's shipped defaults auto-size? Final widths of `selu_net` on digits from several starting widths (issue 23).

Each start trains `fit_one_cycle(--epochs, lr)` with `DASGrowPruneCallback()` at its defaults, where lr is
`--lr`, or, with `--lr find`, what `lr_find` suggests (valley) for the net at the middle start; all four of
`lr_find`'s suggestions for that net are printed first, to show where `--lr` sits among them. Prints each
start's final widths, parameters and accuracy, then per layer the spread of the final widths around their mean
over the starts (target: every start within +-25 % of the mean, the paper's Fig. 2) and how far each start ended
below it (target: the widest start ends well below its start). `--net paper`: the paper's network (flatten head,
dropout 0.2 and 0.5 after the strided convs) instead of `selu_net`'s default global-average-pool head.
`--grow-out small`: new units' outgoing weights drawn small and random (LeCun normal of the consuming layer times
`tau`, as the authors' code does) right after each growth, instead of `grow_units`' zeros (a bench-only variant).
Usage: OMP_NUM_THREADS=1 python bench/das_sizes.py [--starts 16 64 256] [--epochs 20] [--lr 3e-3|find] [--size 8]
                                                  [--seed 0] [--alpha A] [--net default|paper] [--grow-out zero|small]
"""
import argparse, math, multiprocessing, os, statistics, sys, warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
import torch
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from fastai.learner import Learner
from fastai.metrics import accuracy
from fastai.torch_core import set_seed
import fastai.callback.progress  # noqa: F401  (no_bar)
from fastai.callback.schedule import minimum, steep, valley, slide  # also Learner.fit_one_cycle, lr_find
from fastprune.data import digits_dls
from fastprune.models import selu_net
from fastprune.surgery.graph import trace, group_of
from fastprune.callbacks.das import DASGrowPruneCallback

class _SmallOutgoing(DASGrowPruneCallback):
    "DAS whose new units' outgoing weights start small and random instead of zero (the authors' growth)."
    def __init__(self, x, **kw): super().__init__(**kw); self.x = x
    def before_train(self):
        super().before_train()
        old, new = (self.history[-1]['sizes'] if self.history else self.initial['sizes']), self.sizes()
        if old == new: return
        net, graph = self.learn.model, trace(self.learn.model, self.x)
        params = dict(net.named_parameters())
        with torch.no_grad():
            for k in new:
                for r in group_of(graph, k).slices('sink'):
                    if r.name not in params or new[k] <= old[k]: continue
                    p = params[r.name]
                    rows = p.movedim(r.dim, 0)[r.offset + old[k] * r.inner: r.offset + new[k] * r.inner]
                    rows.normal_(0, self.tau / math.sqrt(p[0].numel()))  # LeCun normal (std 1/sqrt(fan_in)) times tau

def _learner(a, width, das=True):
    set_seed(a.seed, reproducible=True)
    kw = {} if a.alpha is None else dict(alpha=a.alpha)
    das_cb = (lambda: _SmallOutgoing(torch.zeros(2, 3, a.size, a.size), **kw)) if a.grow_out == 'small' else (lambda: DASGrowPruneCallback(**kw))
    cbs = [das_cb()] if das else []
    net = selu_net(width=width, **(dict(size=a.size, dropout=(0.2, 0.5)) if a.net == 'paper' else {}))
    return Learner(digits_dls(size=a.size, bs=32), net, metrics=accuracy, cbs=cbs)

def _run(a, width, lr):
    torch.set_num_threads(1); warnings.simplefilter('ignore')
    learn = _learner(a, width)
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(a.epochs, lr)
    cb = learn.cbs.filter(lambda c: isinstance(c, DASGrowPruneCallback))[0]
    with learn.no_bar(): acc = float(learn.validate()[1])
    return cb.sizes(), cb.history[-1]['n_params'], acc, [h['sizes'] for h in cb.history]

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--starts', type=int, nargs='+', default=[16, 64, 256]); ap.add_argument('--epochs', type=int, default=20)
    ap.add_argument('--lr', default='3e-3'); ap.add_argument('--size', type=int, default=8)
    ap.add_argument('--seed', type=int, default=0); ap.add_argument('--alpha', type=float, default=None)
    ap.add_argument('--net', default='default', choices=['default', 'paper'])
    ap.add_argument('--grow-out', default='zero', choices=['zero', 'small'])
    a = ap.parse_args()
    warnings.simplefilter('ignore'); torch.set_num_threads(1)
    learn = _learner(a, sorted(a.starts)[len(a.starts) // 2], das=False)
    with learn.no_bar(), learn.no_logging(): sugg = learn.lr_find(suggest_funcs=(minimum, steep, valley, slide), show_plot=False)
    print(f"lr_find on the {a.net} net at width {sorted(a.starts)[len(a.starts) // 2]} without DAS suggests: "
          + ', '.join(f'{k} {v:.1e}' for k, v in sugg._asdict().items()))
    lr = sugg.valley if a.lr == 'find' else float(a.lr)
    print(f"DASGrowPruneCallback({'' if a.alpha is None else f'alpha={a.alpha}'}) defaults: "
          f"{ {k: getattr(DASGrowPruneCallback(), k) for k in ('penalty_mode', 'alpha', 'tau', 'growth_pct', 'min_growth')} }; "
          f"digits {a.size}x{a.size}, {a.net} net, new units' outgoing weights {a.grow_out}, fit_one_cycle({a.epochs}, {lr:.2e}), seed {a.seed}")
    with ProcessPoolExecutor(min(len(a.starts), os.cpu_count()), mp_context=multiprocessing.get_context('fork')) as ex:
        res = dict(zip(a.starts, ex.map(_run, [a] * len(a.starts), a.starts, [lr] * len(a.starts))))
    for w, (sizes, n, acc, hist) in res.items():
        print(f"start {w:4d}: final {sizes}  {n:,} params  accuracy {acc:.4f}")
        print(f"            widths per epoch: {[list(h.values()) for h in hist]}")
    ok = True
    for k in res[a.starts[0]][0]:
        fin = [res[w][0][k] for w in a.starts]; mean = statistics.mean(fin)
        dev = [f / mean - 1 for f in fin]; ok &= max(map(abs, dev)) <= 0.25
        print(f"{k:6s} final {fin}  mean {mean:.1f}  deviation from the mean {', '.join(f'{d:+.0%}' for d in dev)}")
    print(f"every layer of every start within +-25 % of the mean over the starts: {ok}")
    w = max(a.starts); print(f"widest start {w}: final widths {sorted(res[w][0].values())}, "
                             f"at most {max(res[w][0].values()) / w:.0%} of the start")

if __name__ == '__main__': main()
