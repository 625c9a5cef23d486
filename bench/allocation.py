"""Why global ranking trails the local share on the pretrained CIFAR ResNet-20 (issue 20, target (c)): alternatives.

Every variant prunes the same dense net (bench/quality.py's cached ResNet-20, fine-tuned on the JPEG CIFAR-10 subset)
to the same FLOPs budget with `prune_to_budget` at filter granularity over the coupling groups, compacts it, and
fine-tunes it with `fit_one_cycle(--epochs, 1e-3)` on the same data and seeds as bench/quality.py (no distillation),
then prints accuracy (mean ± sd over seeds), FLOPs and params ratios and the kept units of the inner convs of each
stage (mean over the stage's blocks; ResNet-20's residual streams are not prunable, their zero-padded shortcuts fix
their width, so only the blocks' inner convs are pruned, as in Torch-Pruning's rows of bench/quality.py):
- local: the same share of every block set (`Sparsifier.local_order`, the default context under a budget);
- global: one ranking, each set's scores over their mean (`normalize='mean'`, the default of the global context);
- global-raw: one ranking of the raw L1 scores (`normalize=None`);
- global-cost: the normalised scores divided by each set's FLOPs per unit (relative to the mean over sets), so a
  unit that costs more FLOPs is pruned earlier: importance per FLOP saved;
- global-group / local-group: each unit scored as Torch-Pruning's group importance does, over every tensor its
  channel is sliced from (the producing conv's filter, its BatchNorm's scale and the consuming conv's input
  columns; each tensor's scores over their mean, then summed) instead of the producing filter alone.
The cost and group variants replace private pieces of the sparsifier for this measurement only; they are not
library options.
Usage: OMP_NUM_THREADS=1 python bench/allocation.py [--target 3] [--seeds 3] [--epochs 3] [--workers 2] [--out F]
"""
import argparse, datetime, multiprocessing, os, shlex, statistics, sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
import torch
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import quality as Q
from fastai.torch_core import set_seed
from fastprune.budget import Budget, CostModel, count_cost, prune_to_budget
from fastprune.sparsifier import Sparsifier
from fastprune.surgery import compact
from fastprune.surgery.groups import Group

VARIANTS = ('local', 'global', 'global-raw', 'global-cost', 'global-group', 'local-group')

def group_scores(params):
    "Score each unit over every weight tensor it is sliced from (each tensor's scores over their mean, summed)."
    def scores(block, sp):
        out = 0
        for r in block.all_recs:
            if not r.name.endswith('weight'): continue
            u = Group.unit_rows(params[r.name].detach().abs(), r).sum(1)
            out = out + u / u.mean().clamp_min(1e-12)
        return out
    return scores

def per_flop(sp, x):
    "Each block set's normalised scores divided by its FLOPs per unit (over the mean of the sets')."
    cost, n = CostModel(sp, x), len(sp.blocks)
    base = cost([0] * n)['flops']
    w = torch.tensor([base - cost([int(j == i) for j in range(n)])['flops'] for i in range(n)], dtype=torch.float)
    w, ranking = w / w.mean(), sp._ranking
    def weighted(caps):
        s, lens = ranking(caps)
        return torch.cat([c / w[i] for i, c in enumerate(s.split(lens))]), lens
    return weighted

def run(task):
    variant, seed, target, epochs = task
    data, net = Q.cifar_subset(400, 200), 'resnet20'
    state = torch.load(Q.dense_path(net, 400, 200, 2))['state']
    model, x = Q.dense_net(net, state), Q.example_input(Q.cifar_subset(400, 200))
    dense = count_cost(model, x)
    context = variant.split('-')[0]
    sp = Sparsifier(model, 'filter', context, example_input=x, **({'normalize': None} if variant == 'global-raw' else {}))
    if variant.endswith('group'):
        scorer = group_scores(dict(model.named_parameters()))
        for b in sp.blocks: b.scores = scorer.__get__(b)
    if variant == 'global-cost': sp._ranking = per_flop(sp, x)
    prune_to_budget(sp, Budget(flops=1 / target), x, dense)
    kept = [int((~b.pruned(sp)).sum()) for b in sp.blocks]
    sp.apply_masks(); sp.detach(); compact(model, x)
    set_seed(seed, reproducible=True)
    learn = Q.learner(data, model)
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(epochs, 1e-3)
    cost = count_cost(learn.model, x)
    return dict(acc=100 * Q.validate(learn), flops=dense['flops'] / cost['flops'], params=dense['params'] / cost['params'], kept=kept)

def main(target=3, seeds=3, epochs=3, workers=2, out=None):
    lines = [f"# OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '')} python bench/allocation.py {shlex.join(sys.argv[1:])}   "
             f"(run {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, torch {torch.__version__})",
             f"resnet20 (bench/quality.py's dense net), {target}x fewer FLOPs, fit_one_cycle({epochs}, 1e-3), seeds {list(range(seeds))}; "
             f"kept: inner-conv units per stage (of 16 / 32 / 64), mean over its 3 blocks"]
    tasks = [(v, s, target, epochs) for s in range(seeds) for v in VARIANTS]
    with ProcessPoolExecutor(workers, multiprocessing.get_context('spawn')) as ex: res = list(ex.map(run, tasks))
    lines.append(f"{'variant':<14}{'accuracy %':<22}{'FLOPs':>7}{'params':>8}  kept per stage")
    for v in VARIANTS:
        rs = [r for t, r in zip(tasks, res) if t[0] == v]
        accs = [r['acc'] for r in rs]
        kept = [statistics.mean(r['kept'][3 * i + j] for r in rs for j in range(3)) for i in range(3)]
        lines.append(f"{v:<14}{statistics.mean(accs):6.2f} ± {statistics.stdev(accs):4.2f} ({len(accs)}) "
                     f"{statistics.mean(r['flops'] for r in rs):7.2f}×{statistics.mean(r['params'] for r in rs):7.2f}×  "
                     + ' / '.join(f'{k:.1f}' for k in kept))
    print('\n'.join(lines))
    if out: Path(out).write_text('\n'.join(lines) + '\n')

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--target', type=float, default=3); p.add_argument('--seeds', type=int, default=3)
    p.add_argument('--epochs', type=int, default=3); p.add_argument('--workers', type=int, default=2); p.add_argument('--out')
    main(**vars(p.parse_args()))
