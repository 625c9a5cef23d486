"""Study 000 (Hubens et al.): is a pre-trained-then-fine-tuned net pruned further than the same net trained from scratch?

Task: Fashion-MNIST at 32x32 (28x28 zero-padded by 2, grey replicated to 3 channels, ImageNet statistics as the
CIFAR weights expect), `--n-train` training images per class (a seeded sample per seed), validation and held-out
test sets of `--n-valid` images per class each, drawn once (seed 0) from the official test split.
Nets: the CIFAR ResNet-20 (option-A shortcuts) with the pretrained CIFAR-10 weights of ../shared/data/weights and a
new classifier ('pre-trained', network A of the paper), or randomly initialised ('scratch', network B). Both are
trained as the paper does, with Adam and a step decay: `fit(e1, 1e-3)` then `fit(e2, 1e-4)` (--ft-epochs for A,
--scratch-epochs for B, so B gets more epochs to come near A's accuracy). Then, as the paper: a sensitivity
analysis (`sensitivity`, each group alone at the `--sens` sparsities, 50 % by default) ranks the groups, and `prune_until` removes l1-smallest filters
group by group, least sensitive first, `--step` of a group per step, retraining after each step with the paper's
rule (`PAPER_RETRAIN`: constant rate, the lowest of the baseline training, here 1e-4) but `--retrain-epochs` epochs
(1 by default, where the paper retrains 5: what two shared CPU cores allowed), and stops a group at the first step
that costs more than 1 point of validation accuracy.
Only the inner conv of each residual block is prunable (the zero-padded shortcuts fix the residual streams' width).
Prints per run and, over seeds (mean +- sd), accuracies, parameters and FLOPs left, and the parameters left in each
conv/linear layer (the paper's Table 1 shape) and in each stage. (Each run keeps the names of the groups it could
prune, in model order, under 'groups'; the order `prune_until` took is not kept.)
Usage: OMP_NUM_THREADS=1 python bench/pretrain_study.py [--seeds 3] [--from-seed 0] [--n-train 50] [--n-valid 50] [--step 0.25] [--sens 0.5]
                     [--retrain-epochs 1] [--ft-epochs 4 2] [--scratch-epochs 12 4] [--workers 2] [--out FILE]
"""
import argparse, datetime, json, multiprocessing, os, random, shlex, statistics, sys, time, warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
import numpy as np, torch
from PIL import Image
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from fastai.data.core import DataLoaders, TfmdDL
from fastai.learner import Learner
from fastai.losses import CrossEntropyLossFlat
from fastai.metrics import accuracy
from fastai.torch_core import set_seed
import fastai.callback.progress  # noqa: F401  (no_bar)
from fastprune.data import shared_data
from fastprune.models import resnet20
from fastprune.studies.sensitivity import sensitivity, prune_until, PAPER_RETRAIN

WEIGHTS = Path(__file__).resolve().parents[2]/'shared'/'data'/'weights'/'resnet20-12fca82f.th'
MEAN, STD = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
CONDITIONS = ('pre-trained', 'scratch')

def images(folder, per_class, seed, skip=0):
    "(x, y): `per_class` images of each class of `folder` (after `skip`), seeded sample, as normalised (N,3,32,32)."
    xs, ys, rng = [], [], random.Random(seed)
    for c, d in enumerate(sorted(p for p in folder.iterdir() if p.is_dir())):
        files = sorted(d.iterdir()); rng.shuffle(files)
        for f in files[skip:skip + per_class]: xs.append(np.asarray(Image.open(f).convert('L'))); ys.append(c)
    x = torch.nn.functional.pad(torch.from_numpy(np.stack(xs)).float() / 255., (2, 2, 2, 2)).unsqueeze(1).expand(-1, 3, -1, -1)
    return ((x - MEAN) / STD).contiguous(), torch.tensor(ys)

def learner(train, valid, model, seed):
    set_seed(seed)
    dls = DataLoaders(TfmdDL(list(zip(*train)), bs=64, shuffle=True, drop_last=True, num_workers=0),
                      TfmdDL(list(zip(*valid)), bs=500, num_workers=0), device='cpu')
    return Learner(dls, model, metrics=accuracy, loss_func=CrossEntropyLossFlat())

def test_acc(learn, test):
    with learn.no_bar(), learn.no_logging(): return float(learn.validate(dl=TfmdDL(list(zip(*test)), bs=500, num_workers=0))[1])

def cache_file(cond, seed, a):
    "Where a run's result is kept, named by every setting it depends on (so a pilot seed is reused, not rerun)."
    key = f"{cond}_s{seed}_n{a.n_train}_v{a.n_valid}_st{a.step}_re{a.retrain_epochs}_ft{a.ft_epochs[0]}-{a.ft_epochs[1]}_sc{a.scratch_epochs[0]}-{a.scratch_epochs[1]}_se{'-'.join(map(str, a.sens))}"
    return Path(os.environ.get('FASTPRUNE_CACHE') or Path.home()/'.cache'/'fastprune')/'pretrain_study'/f'{key}.json'

def run(task):
    cond, seed, a = task
    path = cache_file(cond, seed, a)
    if path.exists(): return dict(json.loads(path.read_text()), cached=True)
    res = study(cond, seed, a)
    path.parent.mkdir(parents=True, exist_ok=True); path.write_text(json.dumps(res))
    return res

def study(cond, seed, a):
    "One run: train `cond`'s net, rank its groups by sensitivity, prune it within 1 point; its figures as a dict."
    torch.set_num_threads(1); warnings.filterwarnings('ignore')
    t0, root = time.time(), shared_data('fashion_mnist')
    train = images(root/'train', a.n_train, seed)
    valid, test = images(root/'test', a.n_valid, 0), images(root/'test', a.n_valid, 0, skip=a.n_valid)
    set_seed(seed)
    model = resnet20(WEIGHTS if cond == 'pre-trained' else None)
    if cond == 'pre-trained': model.linear.reset_parameters()  # a new classifier for the new task
    learn = learner(train, valid, model, seed)
    e1, e2 = a.ft_epochs if cond == 'pre-trained' else a.scratch_epochs
    with learn.no_bar(), learn.no_logging():
        learn.fit(e1, 1e-3); learn.fit(e2, 1e-4)  # Adam with a step decay; the last (lowest) rate is the retraining's
    test0 = test_acc(learn, test)
    print(f"{cond} seed {seed} ({Path(__file__).parent}): trained in {(time.time() - t0) / 60:.1f} min", file=sys.stderr, flush=True)
    sens = sensitivity(learn, sparsities=a.sens)
    print(f"{cond} seed {seed}: sensitivity done at {(time.time() - t0) / 60:.1f} min", file=sys.stderr, flush=True)
    r = prune_until(learn, max_drop=0.01, step=a.step, order=sens, n_repeats=1, **dict(PAPER_RETRAIN, retrain_epochs=a.retrain_epochs))
    t = r.table.set_index('layer')
    return dict(cond=cond, seed=seed, baseline=r.baseline, final=r.final, test0=test0, test1=test_acc(learn, test), lr=r.lr,
                params0=r.before.params, params1=r.after.params, flops0=r.before.flops, flops1=r.after.flops,
                layer_params0=t.params_before.to_dict(), layer_params1=t.params_after.to_dict(),
                steps=len(r.history), kept_steps=int(r.history.kept.sum()), groups=[l.split('+')[0] for l in sens.layer.unique()],
                minutes=(time.time() - t0) / 60, cached=False)

def ms(xs, f='{:.2f}'):
    xs = list(xs)
    return (f + ' +- ' + f).format(statistics.mean(xs), statistics.stdev(xs)) if len(xs) > 1 else (f + ' (1 run)').format(xs[0])

def stage(layer): return layer.split('.')[0] if layer.startswith('layer') else layer

def report(res, a):
    out = []
    p = lambda *s: out.append(' '.join(str(x) for x in s))
    p(f"ResNet-20 on Fashion-MNIST 32x32, {a.n_train}/class train, {a.n_valid}/class valid and test; prune_until: max_drop 0.01, "
      f"step {a.step}, retrain {a.retrain_epochs} epochs at constant lr (the last rate of the baseline training), sensitivity order "
      f"(sparsities {a.sens}); baseline: fit(e1, 1e-3) + fit(e2, 1e-4), pre-trained e={a.ft_epochs}, scratch e={a.scratch_epochs}")
    p('\nper run (cached: the run was read from an earlier invocation with the same settings, e.g. the one-seed pilot)')
    p(f"{'net':12} seed  lr      valid base->pruned   test base->pruned   params left  FLOPs left  steps kept/tried  minutes")
    for r in res:
        p(f"{r['cond']:12} {r['seed']:4}  {r['lr']:.0e}  {100*r['baseline']:6.2f} -> {100*r['final']:6.2f}   "
          f"{100*r['test0']:6.2f} -> {100*r['test1']:6.2f}    {r['params1']:9,d}  {r['flops1']/1e6:8.2f} M   {r['kept_steps']:3}/{r['steps']:<3}  {r['minutes']:6.1f}{'  cached' if r['cached'] else ''}")
    p(f"\nover seeds (mean +- sd; n: runs per net); dense: {res[0]['params0']:,} params, {res[0]['flops0']/1e6:.2f} M FLOPs")
    p(f"{'net':12} {'n':>2} {'valid base %':16} {'valid pruned %':16} {'test base %':16} {'test pruned %':16} {'params left %':16} {'FLOPs left %':16}")
    for c in CONDITIONS:
        rs = [r for r in res if r['cond'] == c]
        if not rs: continue
        p(f"{c:12} {len(rs):2} " + ' '.join(f"{ms(v):16}" for v in (
            [100 * r['baseline'] for r in rs], [100 * r['final'] for r in rs], [100 * r['test0'] for r in rs], [100 * r['test1'] for r in rs],
            [100 * r['params1'] / r['params0'] for r in rs], [100 * r['flops1'] / r['flops0'] for r in rs])))
    layers = list(res[0]['layer_params0'])
    p("\nparameters left per layer, % of the dense layer (mean +- sd over seeds; the paper's Table 1 shape)")
    p(f"{'layer':18} {'params':>7}  " + '  '.join(f"{c:>16}" for c in CONDITIONS))
    for l in layers:
        cols = [ms([100 * r['layer_params1'][l] / r['layer_params0'][l] for r in res if r['cond'] == c], '{:.1f}') for c in CONDITIONS]
        p(f"{l:18} {res[0]['layer_params0'][l]:7,d}  " + '  '.join(f"{x:>16}" for x in cols))
    p("\nparameters left per stage, % of the dense stage's conv/linear parameters (mean +- sd over seeds)")
    stages = list(dict.fromkeys(stage(l) for l in layers))
    for s in stages:
        ls = [l for l in layers if stage(l) == s]
        cols = [ms([100 * sum(r['layer_params1'][l] for l in ls) / sum(r['layer_params0'][l] for l in ls) for r in res if r['cond'] == c], '{:.1f}')
                for c in CONDITIONS]
        p(f"{s:18} {sum(res[0]['layer_params0'][l] for l in ls):7,d}  " + '  '.join(f"{x:>16}" for x in cols))
    return '\n'.join(out)

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--seeds', type=int, default=3)
    ap.add_argument('--from-seed', type=int, default=0, help='run seeds from-seed .. seeds-1 (to spread them over invocations)')
    ap.add_argument('--n-train', type=int, default=50)
    ap.add_argument('--n-valid', type=int, default=50)
    ap.add_argument('--step', type=float, default=0.25)
    ap.add_argument('--sens', type=float, nargs='+', default=[0.5], help="sparsities of the sensitivity analysis that ranks the groups")
    ap.add_argument('--retrain-epochs', type=int, default=1, help=f"the paper: {PAPER_RETRAIN['retrain_epochs']}")
    ap.add_argument('--ft-epochs', type=int, nargs=2, default=(4, 2))
    ap.add_argument('--scratch-epochs', type=int, nargs=2, default=(12, 4))
    ap.add_argument('--conditions', nargs='+', default=list(CONDITIONS), choices=CONDITIONS)
    ap.add_argument('--workers', type=int, default=2)
    ap.add_argument('--cached-only', action='store_true', help='report only the runs already done (kept on disk), run nothing')
    ap.add_argument('--out')
    a = ap.parse_args()
    cmd = f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '?')} python {' '.join(shlex.quote(x) for x in sys.argv)}"
    when = datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')
    tasks = [(c, s, a) for s in range(a.from_seed, a.seeds) for c in a.conditions]
    if a.cached_only: tasks = [t for t in tasks if cache_file(*t).exists()]
    with ProcessPoolExecutor(a.workers, mp_context=multiprocessing.get_context('spawn')) as ex: res = list(ex.map(run, tasks))
    text = f"# {cmd}   (written {when}, torch {torch.__version__}; runs marked cached were made earlier with the same settings)\n" + report(res, a)
    print(text)
    if a.out: Path(a.out).write_text(text + '\n')
