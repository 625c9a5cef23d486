"""Study 004 (Hubens et al., "Improve convolutional neural network pruning by maximizing filter variety"): cluster-l1
and cluster-movement vs plain l1 and movement at 60 / 70 / 80 % filter sparsity (the paper's Tables 1-2), and
lottery tickets with rewinding found with and without clustering (its Figs. 4-6), mean ± sd over seeds.

Setting, and where it departs from the paper (VGG-16 / ResNet-18 pretrained on ImageNet, CIFAR-10/100 and
Caltech-101 at 224 px, a GPU), shrunk to run in under an hour on a CPU shared by several jobs:
- data: MNIST from the shared data (`--data fashion_mnist` also works), a class-balanced sample of `--per-class`
  training images per class (default 100) and `--test-per-class` test images per class (default 100) for accuracy,
  28×28 greyscale in [0, 1]. (A small CNN on a Fashion-MNIST sample this budget allows stayed near 80 %);
- net: `vgg_bn(in_ch=1, widths=--widths)` (three conv-BN-ReLU-max-pool stacks of 8, 16, 32 filters), trained from
  scratch: no ImageNet pre-training, so the paper's transfer regime (where movement beats magnitude) is not reproduced;
- step (1), training: `fit_one_cycle(--pre-epochs, --pre-lr)` (paper: 15 epochs at 1e-3; here 5 at 1e-2);
- the per-layer schedule of the paper: every conv layer in turn (the first included) is pruned to the target sparsity
  at once, then the net is fine-tuned for `--ft-epochs` at `--ft-lr` (paper: 3 epochs at 3e-4; here 1 at 1e-3)
  before the next layer; here one `ClusterPruneCallback` fit of L × ft-epochs at a constant learning rate (Adam), one
  segment per layer, `one_shot()` at the start of each segment, so every layer gets the same fine-tuning; the plain
  methods use the same callback and masks, keeping the layer's top-scoring filters instead of one per cluster;
- criteria: l1 (`large_final`, a filter's mean |w|) and `movement`, |w_t| − |w_0| with w_0 the weights at
  initialisation (`snapshot_init` right after the model is created), as the paper defines it;
- clusters: k = round((1 − s)·n) per layer, K-Means (10 restarts); signatures are `--size`-pixel activation-maximisation
  images (`--steps` Adam steps, no transforms) embedded by the trained dense net's own conv trunk (a frozen copy,
  spatially averaged features): the paper embeds with ImageNet AlexNet, whose weights cannot be downloaded here;
- lottery tickets with rewinding (paper Section 5: rewind to the weights after step (1), train the subnetwork for 15
  epochs): the ticket is the mask each pruning run above ends with; its surviving weights are rewound to the trained
  dense weights (the end of step (1)) and the masked net is trained with `fit_one_cycle(--ticket-epochs, --pre-lr)`
  (here 2 epochs). The paper also rewinds after each layer's pruning step while finding the mask; here the mask comes
  from the run that fine-tunes without rewinding (no second pruning run per ticket). Ticket sparsities are those of
  the pruning runs (the paper goes from 10 % to 80 %).
All methods of a seed start from the same trained net and see the same batches (paired runs).

Usage (from the repo root): PYTHONPATH=. nice -n 19 python bench/cluster_study.py [--quick] [--seeds 0,1,2]
One process per seed, side by side, then the tables: `--seeds 0 --rows r0.jsonl` (and 1, 2), then
`--merge r0.jsonl,r1.jsonl,r2.jsonl`.
"""
import os, io, sys, time, copy, random, datetime, json, tempfile
from pathlib import Path
from contextlib import redirect_stdout
os.environ.setdefault('OMP_NUM_THREADS', '1')
import numpy as np
import torch
from torch import nn
from PIL import Image
from fastcore.script import call_parse
from fastai.data.core import DataLoaders, TfmdDL
from fastai.data.transforms import CategoryMap
from fastai.torch_core import TensorImage, TensorCategory, set_seed
from fastai.learner import Learner
from fastai.losses import CrossEntropyLossFlat
from fastai.metrics import accuracy
from fastai.callback.core import Callback, CancelValidException
from fastai.callback.schedule import fit_one_cycle
from fastprune.data import shared_data
from fastprune.models import vgg_bn
from fastprune.core.criteria import snapshot_init
from fastprune.core.schedules import one_shot
from fastprune.callbacks.cluster import ClusterPruneCallback

METHODS = ('l1', 'cluster-l1', 'movement', 'cluster-movement')


class _PlainLayerwise(ClusterPruneCallback):
    "The same layer-by-layer schedule and masks, but the layer keeps its top-scoring filters (no clustering)"
    def _cluster_prune(self, layer, frac):
        self.sparsifier.sparsify({layer: self.sparsity * frac})
        self.sparsifier.apply_masks()


class _FixedMasks(Callback):
    "Train with fixed masks {parameter name: bool mask}: masked weights get no gradient and stay zero (a ticket's fit)"
    order = 8
    def __init__(self, masks): self.masks = masks
    def _params(self): return [(p, self.masks[n]) for n, p in self.learn.model.named_parameters() if n in self.masks]
    def before_fit(self): self.after_step()
    def before_step(self):
        for p, m in self._params():
            if p.grad is not None: p.grad.mul_(m)
    def after_step(self):
        with torch.no_grad():
            for p, m in self._params(): p.mul_(m)


class _Images:
    "Greyscale images (N,1,H,W) in [0, 1] and int labels, as fastai items"
    def __init__(self, x, y, vocab): self.x, self.y, self.vocab, self.loss_func = x, y, vocab, CrossEntropyLossFlat()
    def __len__(self): return len(self.y)
    def __getitem__(self, i): return TensorImage(self.x[i]), TensorCategory(self.y[i])


SPLITS = {'mnist_png': ('training', 'testing'), 'fashion_mnist': ('train', 'test')}


def _load(data, split, per_class, seed):
    "A class-balanced sample of the `split` folder of shared dataset `data` as tensors (same sample for every method and seed)"
    root = shared_data(data) / split
    rng, xs, ys = random.Random(seed), [], []
    for c in range(10):
        files = sorted((root / str(c)).glob('*.png'))
        for f in rng.sample(files, min(per_class, len(files))):
            xs.append(torch.from_numpy(np.array(Image.open(f).convert('L'), dtype=np.float32) / 255.)[None])
            ys.append(c)
    return torch.stack(xs), torch.tensor(ys)


def _dls(data, per_class, test_per_class, bs=64):
    vocab = CategoryMap(list(range(10)))
    train, test = (_Images(*_load(data, s, n, 0), vocab) for s, n in zip(SPLITS[data], (per_class, test_per_class)))
    dls = DataLoaders(TfmdDL(train, bs=bs, shuffle=True, drop_last=True, num_workers=0),
                      TfmdDL(test, bs=256, shuffle=False, num_workers=0), device='cpu')
    dls.vocab, dls.c = vocab, 10
    return dls


def _trunk(model):
    "The trained net's conv trunk up to global pooling, a frozen copy: the signatures' encoder"
    m = copy.deepcopy(model)
    return nn.Sequential(*[l for n, l in m.named_children() if n.startswith(('stack', 'pool'))]).eval().requires_grad_(False)


def _seeded(dls, seed):
    set_seed(seed, reproducible=True)
    for dl in dls.loaders: dl.rng = random.Random(seed)  # the same batches for every method of a seed


class _NoValidation(Callback):
    "Skip the per-epoch validation inside a fit (only the final accuracy is used): a sixth less compute"
    def before_validate(self): raise CancelValidException


def _quiet_fit(learn, fit):
    with learn.no_bar(), learn.no_logging(), redirect_stdout(io.StringIO()), learn.added_cbs(_NoValidation()):
        fit()  # quiet: the callbacks' per-layer tables
    with learn.no_bar(), learn.no_logging(): return learn.validate()[1]


def _prune(method, sparsity, seed, dls, trained, w0, encoder, a):
    "Accuracy after the per-layer pruning run, kept filters per layer, and the masks it ends with"
    model = copy.deepcopy(trained)
    convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    crit = 'large_final' if method.endswith('l1') else 'movement'
    cls = ClusterPruneCallback if method.startswith('cluster') else _PlainLayerwise
    cb = cls(sparsity, criteria=crit, layers=convs, schedule=one_shot, encoder=encoder, compact=False, seed=seed,
             render_kw=dict(size=a['size'], steps=a['steps'], transforms=False, in_channels=1),
             encode_kw=dict(stats=None), init=w0 if crit == 'movement' else None)
    _seeded(dls, seed)
    learn = Learner(dls, model, metrics=accuracy, cbs=cb)
    acc = _quiet_fit(learn, lambda: learn.fit(len(convs) * a['ft_epochs'], a['ft_lr']))
    masks = {n: m.clone() for n, m in cb.sparsifier.masks.items()}
    kept = [int(masks[f'{l}.weight'].flatten(1).any(1).sum()) for l in convs]
    return acc, kept, masks


def _ticket(masks, seed, dls, trained, a):
    "Accuracy of the ticket: the mask on the weights rewound to the end of step (1), trained with the masks fixed"
    model = copy.deepcopy(trained)
    _seeded(dls, seed)
    learn = Learner(dls, model, metrics=accuracy, cbs=_FixedMasks(masks))
    return _quiet_fit(learn, lambda: learn.fit_one_cycle(a['ticket_epochs'], a['pre_lr']))


def _cell(v): return f"{np.mean(v) * 100:6.2f} ± {np.std(v) * 100:4.2f}"


def _tables(dense, res, tickets, sps, seeds, secs):
    "The tables: mean ± sd over the seeds, and the paired differences cluster − plain"
    print(f"\n{seeds} seed(s), {secs:.0f}s of runs in all\ndense accuracy: {_cell(dense)} (mean ± sd over {seeds} seed(s))")
    for title, table in (("pruned and fine-tuned layer by layer (paper Tables 1-2)", res),
                         ("lottery tickets with rewinding to the end of step (1) (paper Figs. 4-6)", tickets)):
        print(f"\n{title}: accuracy %, mean ± sd over {seeds} seed(s)\n{'sparsity':<10}" + ''.join(f'{m:>19}' for m in METHODS))
        for s in sps: print(f"{s:<10.0%}" + ''.join(f"{_cell(table[(s, m)]):>19}" for m in METHODS))
        print("cluster − plain, paired by seed (points, mean ± sd): "
              + '; '.join(f"{s:.0%} " + ', '.join(
                  f"{c}: {np.mean(d := np.subtract(table[(s, 'cluster-' + c)], table[(s, c)])) * 100:+.2f} ± {np.std(d) * 100:.2f}"
                  for c in ('l1', 'movement')) for s in sps))


def _merge(files):
    "Tables from the rows of one or more runs (e.g. one process per seed)"
    rows = [json.loads(l) for f in files for l in open(f) if l.strip()]
    dense = [r['acc'] for r in rows if r['method'] == 'dense']
    sps = sorted({r['sparsity'] for r in rows if r['method'] != 'dense'})
    res, tickets = {}, {}
    for r in sorted(rows, key=lambda r: r['seed']):
        if r['method'] == 'dense': continue
        res.setdefault((r['sparsity'], r['method']), []).append(r['acc'])
        tickets.setdefault((r['sparsity'], r['method']), []).append(r['ticket'])
    _tables(dense, res, tickets, sps, len(dense), sum(r['secs'] for r in rows))


@call_parse
def main(quick:bool=False, # seed 0 only, 30+30 images per class, 1-epoch fits, 4-step signatures: a smoke run
         seeds:str='0,1,2', # the seeds to run (one process per seed can run them side by side, see `--rows`/`--merge`)
         data:str='mnist_png', # shared dataset: 'mnist_png' or 'fashion_mnist'
         per_class:int=100, # training images per class
         test_per_class:int=100, # test images per class (accuracy)
         widths:str='8,16,32', # conv widths, one conv per stack
         pre_epochs:int=5, # step (1): epochs of dense training (paper: 15)
         pre_lr:float=1e-2, # step (1): peak learning rate (one cycle; paper: 1e-3); also the tickets'
         ft_epochs:int=1, # fine-tuning epochs after each layer's pruning (paper: 3)
         ft_lr:float=1e-3, # fine-tuning learning rate (constant; paper: 3e-4)
         ticket_epochs:int=2, # epochs of a ticket's training (paper: 15)
         sparsities:str='0.6,0.7,0.8', # filter sparsities
         size:int=28, # side of the signature images
         steps:int=16, # Adam steps per signature
         rows:str=None, # append one JSON line per run to this file
         merge:str=None, # comma-separated row files: print their tables and exit
        ):
    "Tables of study 004 on MNIST or Fashion-MNIST: pruning with and without clustering, and their lottery tickets"
    print(f"# PYTHONPATH=. python {' '.join(sys.argv)}   ({datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, "
          f"torch threads {torch.get_num_threads()})")
    if merge: return _merge(merge.split(','))
    if data not in SPLITS: raise ValueError(f"data={data!r} is not valid; valid: {list(SPLITS)}")
    if quick: seeds, per_class, test_per_class, pre_epochs, ft_epochs, ticket_epochs, steps = '0', 30, 30, 1, 1, 1, 4
    a = dict(ft_epochs=ft_epochs, ft_lr=ft_lr, ticket_epochs=ticket_epochs, pre_lr=pre_lr, size=size, steps=steps)
    sps, seed_list = [float(s) for s in sparsities.split(',')], [int(s) for s in seeds.split(',')]
    widths_t = tuple((int(w),) for w in widths.split(','))
    dls = _dls(data, per_class, test_per_class)
    print(f"{data}, {per_class}/class train, {test_per_class}/class test; vgg_bn(in_ch=1, widths={widths_t}); "
          f"step (1) fit_one_cycle({pre_epochs}, {pre_lr}); per layer: prune, fit {ft_epochs} epoch(s) at {ft_lr}; "
          f"tickets: fit_one_cycle({ticket_epochs}, {pre_lr}); signatures {size}px, {steps} steps; seeds {seed_list}", flush=True)
    out = [] if rows is None else None
    def record(**r):
        if rows is None: out.append(r)
        else:
            with open(rows, 'a') as f: f.write(json.dumps(r) + '\n')
    for seed in seed_list:
        t = time.perf_counter()
        set_seed(seed, reproducible=True)
        model = vgg_bn(in_ch=1, widths=widths_t)
        w0 = snapshot_init(model)  # w_0 of movement: the weights at initialisation
        _seeded(dls, seed)
        learn = Learner(dls, model, metrics=accuracy)
        acc = _quiet_fit(learn, lambda: learn.fit_one_cycle(pre_epochs, pre_lr))
        record(seed=seed, method='dense', sparsity=0., acc=acc, secs=time.perf_counter() - t)
        print(f"seed {seed}: dense accuracy {acc:.4f} ({time.perf_counter() - t:.0f}s)", flush=True)
        encoder = _trunk(model)
        for sparsity in sps:
            for method in METHODS:
                t = time.perf_counter()
                acc, kept, masks = _prune(method, sparsity, seed, dls, model, w0, encoder, a)
                tacc = _ticket(masks, seed, dls, model, a)
                record(seed=seed, method=method, sparsity=sparsity, acc=acc, ticket=tacc, kept=kept, secs=time.perf_counter() - t)
                print(f"  sparsity {sparsity:.0%} seed {seed} {method:<17} pruned {acc:.4f}  ticket {tacc:.4f}  kept {kept}  "
                      f"({time.perf_counter() - t:.0f}s)", flush=True)
    if rows is None:
        tmp = Path(tempfile.mkdtemp()) / 'rows.jsonl'
        tmp.write_text(''.join(json.dumps(r) + '\n' for r in out))
        _merge([tmp])
