"""Accuracy against FLOPs speed-up: fastprune's FLOPs budget beside Torch-Pruning and fasterai, side by side in one run.

The task (issue 20, item 5): make a trained CIFAR-10 net 2x and 3x cheaper in FLOPs (kept FLOPs 1/2 and 1/3) with
filter pruning, then fine-tune it with the same `fit_one_cycle(--epochs, --lr)` (Adam, fastai's defaults otherwise)
on the same data with the same seed. Printed per net x FLOPs target x method: top-1 validation accuracy (mean ± sd
over seeds), FLOPs x and params x (dense / pruned, counted with torch's `FlopCounterMode` on one 32x32 image, convs
and matmuls, on the COMPACTED network: what remains after physically removing the pruned filters), and the
fine-tune wall time in seconds (mean over seeds).

Data: CIFAR-10 from the shared archive (`fastprune.data.shared_data('cifar10')`, JPEG quality 75), `--n-train` images
per class of the train split and `--n-valid` per class of the test split (fixed sample), decoded once into uint8
tensors cached at ~/.cache/fastprune/cifar10_<n-train>_<n-valid>.pt (FASTPRUNE_CACHE moves the folder), normalised
with the ImageNet mean/std (what the pretrained ResNets saw); training batches (64) get a random 32x32 crop of the
zero-padded (4 px) image and a random horizontal flip, drawn on the fly from the seeded torch RNG.

Nets, each prepared once and cached at ~/.cache/fastprune/quality/ by net and data/training settings, so reruns skip it:
- resnet20, resnet56: the CIFAR ResNets with the shared pretrained weights (`fastprune.data.resnet_weights`), first
  fine-tuned densely on this JPEG subset with `fit_one_cycle(--dense-epochs, 1e-3)`;
- vgg: `vgg_bn(widths=((32, 32), (64, 64), (128, 128)), fc=128)`, trained from scratch, `fit_one_cycle(8, 1e-2)`.
Each dense starting accuracy is printed.

Methods (`--methods`, short names first):
- dense: dense control, the dense net trained the same epochs (target-independent: one set of runs per net);
- fp-default: fastprune defaults, `SparsifyCallback(budget=Budget(flops=1/target), granularity='filter', compact=True)`
  (with a budget the defaults are the local context, every layer losing the same share of its lowest-L1 filters,
  and the one-shot schedule at the start of the fit, compacting at once);
- fp-global / fp-local: the same with `context='global' | 'local'` plus `KnowledgeDistillationCallback(teacher=
  'snapshot')` (a frozen copy of the dense net teaches). "fastprune best" in the targets is whichever of the three
  fastprune rows has the highest mean accuracy on that net and target;
- tp-local / tp-global: Torch-Pruning `MagnitudePruner` with `GroupMagnitudeImportance(p=1)` (group L1), one-shot, the
  classifier left whole, `global_pruning=False | True`. Torch-Pruning has no FLOPs budget: the `pruning_ratio` is
  found by bisection (14 steps) on deep copies of the dense net as the smallest ratio whose pruned copy runs and keeps
  at most 1/target of the FLOPs; the bisection is not timed, the prune with that ratio and the fine-tune are.
  On the CIFAR ResNets Torch-Pruning's pruned net does not run at any ratio (its graph misses the coupling that the
  option-A shortcut's zero-padding `F.pad` makes between the residual stream's channels): the row's note then gives
  that error, and the row prunes with the residual-stream convs (the stem and every block's second conv) in
  `ignored_layers`, i.e. inside the blocks only, which does run;
- tp-groupnorm: Torch-Pruning `GroupNormPruner` (group L2 importance, local), ratio by the same bisection, run
  ONE-SHOT: the method normally trains with its group regulariser first, which is left out here (no such phase
  fits the same epoch budget), so this row is the pruner's criterion, not the full method;
- fasterai: fasterai 0.4.1 `SparsifyCallback(f, 'filter', 'local', large_final, one_cycle)` on all Conv2d layers,
  where f is the uniform fraction that reaches the FLOPs target when every prunable channel group of the net loses
  that share of its lowest-L1 filters (bisection with fastprune's surgery, the uniform fraction a local budget uses).
  fasterai only masks, so the fine-tuned net is compacted with `fastprune.surgery.compact(model, example_input)` for
  the count, which removes only exactly dead units: fasterai zeroes a pruned filter's BatchNorm when it updates the
  masks, but the BN's scale and shift then train on (to ~1e-5), and a filter that feeds a residual sum stays, so the
  FLOPs are reported as measured; the note adds the FLOPs ratio with that BN residue of the zero filters dropped.
Every method runs in try/except: one that fails prints `failed: <ExceptionType>: <message>` in its row.

Seeds (`--seeds`, default 3): dense, fp-*, tp-local and tp-global run every seed; tp-groupnorm and fasterai run the
first seed only, and every row says how many seeds it averages. Each run calls `set_seed(seed, reproducible=True)`
before building its data loaders and model. The fine-tune time is the wall time of that run's own pruning and
training (validation runs once, after the fit, and is not timed).

Default sizing, measured on the 2-core machine: one thread, batch 64, a training step costs 10.2 ms per image on
resnet56, 3.3 ms on resnet20 and 2.6 ms on the VGG net when the machine is otherwise idle, so with 400 train / 200
valid images per class (4,000 / 2,000) a dense 3-epoch fine-tune is about 2 min (resnet56), 40 s and 30 s; measured
with 2 workers while other jobs also ran (load average ~4): 231 s, 78 s and 48 s. The 3 nets x 2 targets x 8 methods
with the seeds above are 111 runs, about 30 dense 3-epoch fine-tunes' worth per net (pruned nets train cheaper;
the KD rows also run the teacher; fasterai trains dense), i.e. about an hour on 2 idle cores (about 1.5 h on a
busy machine), plus about 4 min the first time to prepare the dense nets. The runs are spread over `--workers`
processes (default 2) of ONE thread each, taken from one queue in a fixed order, net by net (resnet56 first) and
seed by seed, with the methods interleaved, so every method's runs share the machine with the same kind of
neighbour; each time is that run's own wall time under that shared load (`--workers 1` for times on an otherwise
idle core).

Peers are never dependencies of fastprune: they are imported from `--tp-path` and `--fasterai-path`, installed with
    pip install --target /work/tp_pkg --no-deps torch-pruning==1.6.1
    pip install --target /work/fasterai_pkg --no-deps fasterai==0.4.1 einops
(fasterai's other imports, fastai and torch, come from the environment). A peer that cannot be imported shows its
rows as failed.

Usage:
    OMP_NUM_THREADS=1 python bench/quality.py --out bench/results/quality.txt     # the full run, about an hour
    OMP_NUM_THREADS=1 python bench/quality.py --quick                            # VGG, 2x, 1 seed, small subset: minutes
The `--out` file gets the command and the date as its first line, then everything printed.
"""
import argparse, contextlib, copy, datetime, io, multiprocessing, os, random, shlex, statistics, sys, time, warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
import numpy as np
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode
from PIL import Image
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from fastai.data.core import DataLoaders, TfmdDL
from fastai.data.transforms import Normalize
from fastai.vision.data import imagenet_stats
from fastai.learner import Learner, CancelValidException
from fastai.callback.core import Callback
from fastai.callback.schedule import fit_one_cycle  # noqa: F401  (patches Learner.fit_one_cycle)
from fastai.losses import CrossEntropyLossFlat
from fastai.metrics import accuracy
from fastai.torch_core import set_seed, TensorImage, TensorCategory
from fastprune.data import shared_data, resnet_weights
from fastprune.models import vgg_bn, resnet20, resnet56
from fastprune.surgery import prune_units, compact
from fastprune.deploy import l1_units
from fastprune.core.schedules import one_shot

NETS = ('resnet56', 'resnet20', 'vgg')  # the order the runs are queued in (longest first)
METHODS = {'dense': 'dense control', 'fp-default': 'fastprune defaults (local)', 'fp-global': 'fastprune global + KD',
           'fp-local': 'fastprune local + KD', 'tp-local': 'Torch-Pruning L1, local',
           'tp-global': 'Torch-Pruning L1, global', 'tp-groupnorm': 'Torch-Pruning GroupNorm, one-shot',
           'fasterai': 'fasterai filter, local'}
ONE_SEED = ('tp-groupnorm', 'fasterai')  # run with the first seed only
PEERS = ('tp-local', 'tp-global', 'tp-groupnorm', 'fasterai')
VGG_WIDTHS, VGG_FC = ((32, 32), (64, 64), (128, 128)), 128
DENSE_LR = {'resnet20': 1e-3, 'resnet56': 1e-3, 'vgg': 1e-2}

def n_params(model): return sum(p.numel() for p in model.parameters())

def flops(model, x1):
    "FLOPs of `model` on the one image `x1` (torch's counter: convs and matmuls, a multiply-add is 2)."
    with torch.no_grad(), FlopCounterMode(display=False) as fc: model.eval()(x1)
    return fc.get_total_flops()

def cache_dir():
    return Path(os.environ.get('FASTPRUNE_CACHE') or Path.home()/'.cache'/'fastprune')

# ---------------------------------------------------------------- data
def cifar_subset(n_train, n_valid):
    "(x_train, y_train, x_valid, y_valid): uint8 (N,3,32,32) images and int64 labels, decoded once and cached on disk."
    path = cache_dir()/f'cifar10_{n_train}_{n_valid}.pt'
    if path.exists(): return torch.load(path)
    root, rng = shared_data('cifar10'), random.Random(0)
    def split(folder, n):
        xs, ys = [], []
        for c, d in enumerate(sorted(p for p in (root/folder).iterdir() if p.is_dir())):
            files = sorted(d.iterdir()); rng.shuffle(files)
            if len(files) < n: raise ValueError(f"{d} has {len(files)} images, fewer than the {n} asked per class")
            for f in files[:n]: xs.append(np.asarray(Image.open(f).convert('RGB'))); ys.append(c)
        return torch.from_numpy(np.stack(xs)).permute(0, 3, 1, 2).contiguous(), torch.tensor(ys)
    data = (*split('train', n_train), *split('test', n_valid))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f'.{os.getpid()}.tmp'); torch.save(data, tmp); tmp.replace(path)  # atomic for parallel runs
    return data

class _Images:
    "uint8 images as float `TensorImage`s in [0, 1], with random crop (zero padding 4) and horizontal flip when `augment`."
    def __init__(self, x, y, augment): self.x, self.y, self.augment = x, y, augment; self.loss_func = CrossEntropyLossFlat()
    def __len__(self): return len(self.y)
    def __getitem__(self, i):
        x = self.x[i]
        if self.augment:
            x = nn.functional.pad(x, (4, 4, 4, 4))
            r, c = torch.randint(0, 9, (2,)).tolist()
            x = x[:, r:r + 32, c:c + 32]
            if torch.rand(()) < 0.5: x = x.flip(-1)
        return TensorImage(x.float() / 255.), TensorCategory(self.y[i])

def make_dls(data, bs=64):
    xt, yt, xv, yv = data
    norm = Normalize.from_stats(*imagenet_stats, cuda=False)
    return DataLoaders(TfmdDL(_Images(xt, yt, True), bs=bs, shuffle=True, drop_last=True, after_batch=norm, num_workers=0),
                       TfmdDL(_Images(xv, yv, False), bs=256, after_batch=norm, num_workers=0), device='cpu')

def example_input(data, n=1):
    "The first `n` validation images, normalised, as a plain tensor."
    mean, std = (torch.tensor(s).view(1, 3, 1, 1) for s in imagenet_stats)
    return (data[2][:n].float() / 255. - mean) / std

# ---------------------------------------------------------------- nets
def new_net(net, pretrained=False):
    if net == 'vgg': return vgg_bn(widths=VGG_WIDTHS, fc=VGG_FC)
    depth = int(net.removeprefix('resnet'))
    return {20: resnet20, 56: resnet56}[depth](weights=resnet_weights(depth) if pretrained else None)

def dense_path(net, n_train, n_valid, dense_epochs):
    epochs = 8 if net == 'vgg' else dense_epochs
    return cache_dir()/'quality'/f'{net}_n{n_train}-{n_valid}_e{epochs}_lr{DENSE_LR[net]:g}.pt'

class _TrainOnly(Callback):
    "Skip the per-epoch validation (the accuracy is measured once, after the fit, outside the timed part)."
    order = 0
    def before_validate(self): raise CancelValidException

def learner(data, model):
    return Learner(make_dls(data), model, loss_func=CrossEntropyLossFlat(), metrics=accuracy, cbs=_TrainOnly())

def validate(learn):
    learn.remove_cb(_TrainOnly)
    with learn.no_bar(), learn.no_logging(): return float(learn.validate()[1])

def prepare_dense(net, data, path, dense_epochs):
    "Train (VGG, from scratch) or fine-tune (ResNets, pretrained) the dense net; save {'state', 'acc', 'acc0'}."
    set_seed(1000, reproducible=True)  # a seed none of the runs uses
    learn = learner(data, new_net(net, pretrained=net != 'vgg'))
    acc0 = None if net == 'vgg' else validate(learn)
    learn.add_cb(_TrainOnly())
    t = time.perf_counter()
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(8 if net == 'vgg' else dense_epochs, DENSE_LR[net])
    res = dict(state=learn.model.state_dict(), acc=validate(learn), acc0=acc0, secs=time.perf_counter() - t)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f'.{os.getpid()}.tmp'); torch.save(res, tmp); tmp.replace(path)
    return res

def dense_net(net, state):
    model = new_net(net); model.load_state_dict(state); return model

# ---------------------------------------------------------------- peers
def import_tp(path):
    if path not in sys.path: sys.path.insert(0, path)
    import torch_pruning as tp
    return tp

def import_fasterai(path):
    if path not in sys.path: sys.path.insert(0, path)
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter('ignore')
        import fasterai.sparse.all as fa, fasterai.core.all as fc
    return fa, fc

def _classifier(model):
    "The output layer (the last conv or linear), which Torch-Pruning must be told to leave whole."
    return [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))][-1:]

def _stream_layers(model):
    "The convs that write into a CIFAR ResNet's residual stream: the stem and every block's second conv."
    return [model.conv1, *(b.conv2 for b in model.modules() if type(b).__name__ == '_BasicBlock')] if hasattr(model, 'layer1') else []

def tp_prune(tp, kind, model, x, ratio, keep_stream=False):
    "Prune `model` in place with Torch-Pruning at `ratio` (leaving the residual stream whole when `keep_stream`)."
    ignored = _classifier(model) + (_stream_layers(model) if keep_stream else [])
    if kind == 'tp-groupnorm':
        pruner = tp.pruner.GroupNormPruner(model, x, importance=tp.importance.GroupMagnitudeImportance(p=2),
                                           pruning_ratio=ratio, ignored_layers=ignored)
    else:
        pruner = tp.pruner.MagnitudePruner(model, x, importance=tp.importance.GroupMagnitudeImportance(p=1),
                                           pruning_ratio=ratio, ignored_layers=ignored, global_pruning=kind == 'tp-global')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore'); pruner.step()
    return model

def bisect_ratio(prune, dense, x, keep, steps=14, hi=0.95):
    "Smallest ratio in [0, hi] at which `prune(copy, ratio)` runs and keeps at most `keep` of the FLOPs."
    full, err = flops(dense, x), []
    def kept(r):  # None: the pruned copy does not run (too far, or broken at any ratio)
        try:
            m = prune(copy.deepcopy(dense).eval(), r)
            return flops(m, x) / full
        except Exception as e: err.append(e); return None
    lo, best = 0., None
    for _ in range(steps):
        mid = (lo + hi) / 2
        k = kept(mid)
        if k is None or k <= keep:
            hi = mid
            if k is not None: best = mid
        else: lo = mid
    if best is None:
        if err: raise err[-1]
        raise RuntimeError(f"no pruning ratio up to {hi} keeps at most {keep:.1%} of the FLOPs")
    return best

def drop_bn_residue(model):
    "Copy of `model` with the BatchNorm after each all-zero conv filter zeroed too (fasterai's conv -> next-BN pairing)."
    model, n, residue = copy.deepcopy(model), 0, 0.
    mods = list(model.modules())
    with torch.no_grad():
        for a, b in zip(mods, mods[1:]):
            if isinstance(a, nn.Conv2d) and isinstance(b, nn.BatchNorm2d):
                z = a.weight.flatten(1).abs().sum(1) == 0
                n += int(z.sum()); residue = max([residue, *b.weight[z].abs().tolist(), *b.bias[z].abs().tolist()])
                b.weight[z] = 0; b.bias[z] = 0
    return model, n, residue

def uniform_fraction(dense, x, keep):
    "The uniform share of every prunable group's filters (lowest L1) that leaves at most `keep` of the FLOPs."
    return bisect_ratio(lambda m, r: prune_units(m, l1_units(m, x, r), x), dense, x, keep)

# ---------------------------------------------------------------- one run
_worker = {}

def _init_worker(opts):
    torch.set_num_threads(1)
    warnings.filterwarnings('ignore')
    _worker.update(opts=opts, data=cifar_subset(opts['n_train'], opts['n_valid']), dense={})
    for net in opts['nets']:  # one-time costs (lazy imports, kernel setup) before any timed run
        m = new_net(net); m(torch.randn(64, 3, 32, 32)).sum().backward()

def _dense(net):
    o = _worker['opts']
    if net not in _worker['dense']:
        _worker['dense'][net] = torch.load(dense_path(net, o['n_train'], o['n_valid'], o['dense_epochs']))['state']
    return dense_net(net, _worker['dense'][net])

def _fastprune_cbs(method, target):
    from fastprune.all import Budget, KnowledgeDistillationCallback, SparsifyCallback  # planned API: fails until it lands
    budget = Budget(flops=1 / target)
    if method == 'fp-default': return [SparsifyCallback(budget=budget, granularity='filter', compact=True)]
    context = method.removeprefix('fp-')
    return [SparsifyCallback(budget=budget, granularity='filter', compact=True, schedule=one_shot(start_pct=0),
                             context=context), KnowledgeDistillationCallback(teacher='snapshot')]

def run_one(task):
    "One run, `task` = (net, target, method, seed): dict(acc, flops, params, secs, note) or dict(error)."
    net, target, method, seed = task
    o, data = _worker['opts'], _worker['data']
    x = example_input(data)
    try:
        dense = _dense(net)
        fd, pd = flops(dense, x), n_params(dense)
        note, cbs, model, secs = '', [], dense, 0.
        if method in ('tp-local', 'tp-global', 'tp-groupnorm'):
            tp = import_tp(o['tp_path'])
            try: keep_stream, ratio = False, bisect_ratio(lambda m, r: tp_prune(tp, method, m, x, r), dense, x, 1 / target)
            except Exception as e:  # Torch-Pruning misses the coupling of option-A (zero-padding) shortcuts
                if not _stream_layers(dense): raise
                keep_stream, note = True, f'residual stream kept whole (the full prune breaks the net: {_err(e, 40)}); '
                ratio = bisect_ratio(lambda m, r: tp_prune(tp, method, m, x, r, True), dense, x, 1 / target)
            note += f'ratio {ratio:.3f}'
            set_seed(seed, reproducible=True)
            t = time.perf_counter(); model = tp_prune(tp, method, dense, x, ratio, keep_stream); secs = time.perf_counter() - t
        elif method == 'fasterai':
            fa, fc = import_fasterai(o['fasterai_path'])
            frac = uniform_fraction(dense, x, 1 / target)
            note = f'sparsity {frac:.3f}'
            cbs = [fa.SparsifyCallback(frac, 'filter', 'local', fc.large_final, fc.one_cycle, layer_type=nn.Conv2d)]
        elif method.startswith('fp-'): cbs = _fastprune_cbs(method, target)
        set_seed(seed, reproducible=True)
        learn = learner(data, model)
        with learn.no_bar(), learn.no_logging(), contextlib.redirect_stdout(io.StringIO()):
            t = time.perf_counter(); learn.fit_one_cycle(o['epochs'], o['lr'], cbs=cbs); secs += time.perf_counter() - t
        acc = validate(learn)
        model = learn.model.eval()
        if method == 'fasterai':
            clean, n, residue = drop_bn_residue(model)
            compact(clean, x)
            note += (f'; compact removed {sum(compact(model, x).values())} units; {n} conv filters are zero, their BN '
                     f'keeps up to {residue:.0e}: {fd / flops(clean, x):.2f}x FLOPs with that dropped')
        fp = flops(model, x)
        return dict(acc=acc, flops=fd / fp, params=pd / n_params(model), secs=secs, note=note)
    except Exception as e: return dict(error=_err(e, 160))

def _err(e, n=60): return f"{type(e).__name__}: {str(e).strip().splitlines()[0][:n]}" if str(e).strip() else type(e).__name__

def _prepare(net):
    o = _worker['opts']
    path = dense_path(net, o['n_train'], o['n_valid'], o['dense_epochs'])
    if path.exists(): return torch.load(path, weights_only=False) | dict(cached=True)
    return prepare_dense(net, _worker['data'], path, o['dense_epochs']) | dict(cached=False)

# ---------------------------------------------------------------- table
def fmt_row(name, rs, n_seeds):
    ok = [r for r in rs if 'error' not in r]
    if not ok: return f"{name:<36}failed: {rs[0]['error']}"
    accs = [100 * r['acc'] for r in ok]
    sd = statistics.stdev(accs) if len(accs) > 1 else 0.
    seeds = f'({len(ok)} seed{"s" * (len(ok) > 1)})'
    fails = f"; {len(rs) - len(ok)} failed: {next(r['error'] for r in rs if 'error' in r)}" if len(ok) < len(rs) else ''
    notes = sorted({r['note'] for r in ok if r['note']})
    return (f"{name:<36}{statistics.mean(accs):6.2f} ± {sd:4.2f} {seeds:<10}{statistics.mean(r['flops'] for r in ok):7.2f}×"
            f"{statistics.mean(r['params'] for r in ok):8.2f}×{statistics.mean(r['secs'] for r in ok):9.1f}  "
            + '; '.join(notes[:1]) + (' ...' if len(notes) > 1 else '') + fails)

def mean_acc(rs):
    ok = [100 * r['acc'] for r in rs if 'error' not in r]
    return statistics.mean(ok) if ok else None

def mean_of(rs, key):
    ok = [r[key] for r in rs if 'error' not in r]
    return statistics.mean(ok) if ok else None

def summary(net, target, res):
    "The four issue targets for one net and target, each 'met' / 'not met' / 'n/a' with the numbers behind it."
    acc = {m: mean_acc(rs) for m, rs in res.items()}
    lines = []
    def verdict(ok): return 'n/a (a row it compares failed or was not run)' if ok is None else 'met' if ok else 'NOT met'
    fps = {m: acc[m] for m in ('fp-default', 'fp-global', 'fp-local') if acc.get(m) is not None}
    fb = max(fps, key=fps.get) if fps else None
    best, default, glob, local = fps.get(fb), acc.get('fp-default'), acc.get('fp-global'), acc.get('fp-local')
    reach = {m: mean_of(res[m], 'flops') for m in res if m in PEERS and acc.get(m) is not None}
    peers = {m: a for m, a in acc.items() if m in PEERS and a is not None and reach[m] >= 0.97 * target}
    short = [METHODS[m] for m in reach if m not in peers]
    bp = max(peers, key=peers.get) if peers else None
    ok = None if best is None or bp is None else best >= peers[bp]
    lines.append(f"(a) fastprune best ({METHODS.get(fb)}) {best if best is None else f'{best:.2f}'} >= best peer "
                 + (f"{METHODS[bp]} {peers[bp]:.2f}" if bp else 'none') + f": {verdict(ok)}"
                 + (f"  [peers short of {target}x FLOPs, not compared: {', '.join(short)}]" if short else ''))
    ok = None if default is None or len(fps) < 2 else default >= best - 0.5  # against another fastprune row
    lines.append(f"(b) fastprune defaults {default if default is None else f'{default:.2f}'} within 0.5 of best: {verdict(ok)}")
    ok = None if glob is None or local is None else glob >= local - 0.5
    lines.append(f"(c) global {glob if glob is None else f'{glob:.2f}'} within 0.5 of local "
                 f"{local if local is None else f'{local:.2f}'}: {verdict(ok)}")
    tps = {m: acc[m] for m in ('tp-local', 'tp-global', 'tp-groupnorm') if acc.get(m) is not None}
    tpb = max(tps, key=tps.get) if tps else None
    tb, tt = fb and mean_of(res[fb], 'secs'), tpb and mean_of(res[tpb], 'secs')
    ok = None if tb is None or not tt else tb <= tt
    td = mean_of(res.get('fp-default', []), 'secs')
    lines.append(f"(d) fastprune best ({METHODS.get(fb)}) fine-tune time <= 1.0x Torch-Pruning's (best TP row"
                 + (f", {METHODS[tpb]}): {tb / tt:.2f}x" if tb is not None and tt else ')') + f": {verdict(ok)}"
                 + (f"  [fastprune defaults: {td / tt:.2f}x]" if td is not None and tt and fb != 'fp-default' else ''))
    return [f"{net} {target}x: " + l for l in lines]

def log_tables(log, net, targets, methods, seeds, dense, res):
    "One table per FLOPs target for `net`: a row per method."
    for target in targets:
        log('', f"{net}, {target}x fewer FLOPs (dense {100 * dense['acc']:.2f} %)",
            f"{'method':<36}{'accuracy %':<24}{'FLOPs':>8}{'params':>9}{'time s':>9}  note")
        for m in methods: log(fmt_row(METHODS[m], res[(net, None if m == 'dense' else target, m)], seeds))
    log('', *[l for target in targets for l in summary(net, target, {m: res[(net, target, m)] for m in methods if m != 'dense'})])

# ---------------------------------------------------------------- main
class _Log:
    "print, and append to the `--out` file (flushed line by line) when there is one."
    def __init__(self, out): self.f = open(out, 'w') if out else None
    def __call__(self, *lines):
        for l in lines:
            print(l, flush=True)
            if self.f: self.f.write(l + '\n'); self.f.flush()

def main(quick=False, nets=NETS, targets=(2, 3), methods=tuple(METHODS), seeds=3, epochs=3, lr=1e-3, n_train=400,
         n_valid=200, dense_epochs=2, workers=2, tp_path='/work/tp_pkg', fasterai_path='/work/fasterai_pkg', out=None):
    if quick: nets, targets, seeds, n_train, n_valid, epochs = ('vgg',), (2,), 1, 100, 50, 2
    for v, ok, what in ((nets, NETS, 'net'), (methods, METHODS, 'method')):
        if bad := [n for n in v if n not in ok]: raise SystemExit(f"unknown {what}(s) {bad}; valid: {list(ok)}")
    if quick and out is None: out = str(Path(__file__).parent/'results'/'quality_quick.txt')
    log = _Log(out)
    cmd = ' '.join(f'{k}={os.environ[k]}' for k in ('OMP_NUM_THREADS',) if k in os.environ)
    log(f"# {cmd + ' ' if cmd else ''}python {shlex.join(sys.argv)}   (run "
        f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs, torch {torch.__version__})")
    t0 = time.time()
    cifar_subset(n_train, n_valid)  # decode once here, before the workers read the cache
    nets = [n for n in NETS if n in nets]
    opts = dict(nets=nets, n_train=n_train, n_valid=n_valid, epochs=epochs, lr=lr, dense_epochs=dense_epochs, tp_path=tp_path,
                fasterai_path=fasterai_path)
    seed_list = list(range(seeds))
    tasks = []
    for net in nets:
        for s in seed_list:
            for target in targets:
                for m in methods:
                    if m == 'dense' and target != targets[0]: continue
                    if m in ONE_SEED and s != seed_list[0]: continue
                    tasks.append((net, None if m == 'dense' else target, m, s))
    log('Issue targets, printed under each net\'s tables: (a) fastprune best (the best of its three rows) accuracy >= '
        'the best peer that reaches the FLOPs target (mean over seeds); (b) fastprune defaults within 0.5 point of '
        'fastprune best; (c) global within 0.5 point of local (both with KD); (d) fastprune best fine-tune time <= '
        '1.0x the best Torch-Pruning row\'s (mean)')
    log(f"CIFAR-10 (JPEG q75) {n_train}/{n_valid} train/valid images per class; fine-tune fit_one_cycle({epochs}, {lr:g}), "
        f"batch 64; seeds {seed_list} ({', '.join(ONE_SEED)}: first seed only); {len(tasks)} runs on {workers} worker "
        f"processes, 1 thread each; times are each run's own wall time (prune + train, validation excluded)")
    ctx = multiprocessing.get_context('spawn')
    with ProcessPoolExecutor(workers, ctx, _init_worker, (opts,)) as ex:
        dense = dict(zip(nets, ex.map(_prepare, nets)))
        for net, d in dense.items():
            start = '' if d['acc0'] is None else f"pretrained {100 * d['acc0']:.2f} % on this subset, "
            how = 'from scratch, 8 epochs' if net == 'vgg' else f'{dense_epochs} dense fine-tune epochs'
            log(f"dense {net}: {start}{100 * d['acc']:.2f} % after {how} at lr {DENSE_LR[net]:g}"
                + (' (cached)' if d['cached'] else f" ({d['secs']:.0f} s)"))
        res, left = {}, {net: sum(t[0] == net for t in tasks) for net in nets}
        for task, r in zip(tasks, ex.map(run_one, tasks)):  # each net's tables as soon as its runs are done
            res.setdefault(task[:3], []).append(r)
            left[task[0]] -= 1
            if not left[task[0]]: log_tables(log, task[0], targets, methods, seeds, dense[task[0]], res)
    log('', f"total {(time.time() - t0) / 60:.1f} min wall on {workers} workers")

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--quick', action='store_true', help='VGG, 2x, 1 seed, 100/50 images per class, 2 epochs')
    p.add_argument('--nets', nargs='+', default=list(NETS), help=f'subset of {list(NETS)}')
    p.add_argument('--targets', nargs='+', type=float, default=[2, 3], help='FLOPs reduction factors (dense / pruned)')
    p.add_argument('--methods', nargs='+', default=list(METHODS), help=f'subset of {list(METHODS)}')
    p.add_argument('--seeds', type=int, default=3); p.add_argument('--epochs', type=int, default=3)
    p.add_argument('--lr', type=float, default=1e-3)
    p.add_argument('--n-train', type=int, default=400, help='training images per class')
    p.add_argument('--n-valid', type=int, default=200, help='validation images per class (test split)')
    p.add_argument('--dense-epochs', type=int, default=2, help="dense fine-tune epochs of the pretrained ResNets")
    p.add_argument('--workers', type=int, default=2, help='worker processes, one thread each')
    p.add_argument('--tp-path', default='/work/tp_pkg'); p.add_argument('--fasterai-path', default='/work/fasterai_pkg')
    p.add_argument('--out', help='also write the output here (default with --quick: bench/results/quality_quick.txt)')
    a = p.parse_args()
    a.targets = [int(t) if t == int(t) else t for t in a.targets]
    main(**vars(a))
