"""Study 001 (Huang et al., transfer learning with an augmentation curriculum), in small, on CPU.

1. Curriculum: `ProgressiveAugmentCallback` with the paper's rule (next stage once the epoch's training accuracy
   reaches `--min-train-acc` and the validation accuracy has not risen for `--patience` epochs) against training
   without augmentation and against the strongest stage from the first epoch (the paper's first attempt, which
   stalled). bench/transfer_study.py's small conv net from scratch on all 10 CIFAR-10 classes, `--n-train` images
   per class (training set) and `--n-valid` (test set), `--epochs` epochs of fastai's Adam at a constant
   learning rate (the paper changes it by hand only at the end), batch 64. Stages (geometric: the batches are
   already normalised): 1 Flip; 2 Flip + Rotate(10 deg) + Zoom(1.1); 3 as 2 + RandomErasing(p=0.5).
   Prints each seed's stage per epoch.
2. Freeze vs fine-tune, where features must adapt: the CIFAR-10 ResNet-20 (pretrained, shared weights) on
   Fashion-MNIST (grayscale clothes: another domain), 28x28 padded to 32x32, three equal channels, ImageNet
   statistics as the weights expect, a new 10-way head. Freeze: only the head trains (`requires_grad` off in the
   body; BatchNorm statistics still adapt in training mode, as in a PyTorch freeze-and-train); fine-tune: every
   layer, the same Adam learning rate (the paper's 1e-3 for all layers). `--ft-train` images per class,
   `--ft-epochs` epochs. Prints final training and validation accuracy.
Usage: OMP_NUM_THREADS=1 python bench/curriculum_study.py [--seeds 0,1,2] [--parts curriculum,finetune] [--out F.txt] [--csv F.csv]
  or, parts and seeds run in parallel processes (each with its own --out and --csv), then joined (give the settings
  they ran with): python bench/curriculum_study.py --merge a.csv b.csv ... --out bench/results/curriculum_study.txt
"""
import argparse, datetime, shlex, sys
from pathlib import Path
import numpy as np, pandas as pd, torch
from PIL import Image
from torch import nn
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from transfer_study import net, load_images
from fastai.callback.core import Callback
from fastai.data.core import DataLoaders, DataLoader
from fastai.learner import Learner
import fastai.callback.progress  # noqa: F401  (Learner.no_bar)
from fastai.metrics import accuracy
from fastai.torch_core import TensorImage, set_seed
from fastai.vision.augment import Flip, Rotate, Zoom, RandomErasing
from fastai.vision.data import imagenet_stats
from fasttransform import Pipeline
from fastprune.data import shared_data, resnet_weights
from fastprune.models import resnet20
from fastprune.studies.transfer import ProgressiveAugmentCallback

STAGES = [[Flip()], [Flip(), Rotate(max_deg=10), Zoom(max_zoom=1.1)], [Flip(), Rotate(max_deg=10), Zoom(max_zoom=1.1), RandomErasing(p=0.5)]]

class AugmentFromStart(Callback):
    "The no-curriculum control: one stage's transforms on every training batch from the first epoch."
    order = 5
    def __init__(self, tfms): self.pipe = Pipeline(tfms, split_idx=0)
    def before_batch(self):
        if self.training: self.learn.xb = (self.pipe(self.xb[0]),)

def dls_of(x, y, xv, yv, bs=64):
    "fastai DataLoaders over image tensors (as `TensorImage`, so that fastai's batch transforms act on them)."
    tr = [(TensorImage(a), b) for a, b in zip(x, y)]
    return DataLoaders(DataLoader(tr, bs=bs, shuffle=True, drop_last=True), DataLoader(list(zip(map(TensorImage, xv), yv)), bs=256))

def labelled(images, classes):
    return torch.cat([images[c] for c in classes]), torch.cat([torch.full((len(images[c]),), i) for i, c in enumerate(classes)])

def curriculum_part(args, seeds):
    "One row per (seed, arm): final and best validation accuracy, and for the curriculum its stage and accuracies per epoch."
    path = shared_data('cifar10')
    classes = sorted(p.name for p in (path/'train').iterdir())
    x, y = labelled({c: load_images(path, 'train', c, args.n_train) for c in classes}, classes)
    xv, yv = labelled({c: load_images(path, 'test', c, args.n_valid) for c in classes}, classes)
    rows = []
    for seed in seeds:
        for arm in ('curriculum', 'no augmentation', 'strongest stage from the start'):
            set_seed(seed)
            cb = dict(curriculum=ProgressiveAugmentCallback(STAGES, min_train_accuracy=args.min_train_acc, patience=args.patience),
                      **{'strongest stage from the start': AugmentFromStart(STAGES[-1])}).get(arm)
            learn = Learner(dls_of(x, y, xv, yv), net(10), loss_func=nn.CrossEntropyLoss(), metrics=accuracy, cbs=cb)
            with learn.no_bar(), learn.no_logging(): learn.fit(args.epochs, args.lr)
            accs = [float(r[2]) for r in learn.recorder.values]  # valid accuracy per epoch
            rows.append(dict(part='curriculum', seed=seed, arm=arm, final=100 * accs[-1], best=100 * max(accs)))
            if arm == 'curriculum':
                h = cb.stage_history
                rows[-1].update(stages=''.join(map(str, h.stage)), train_curve=' '.join(f"{100 * a:.0f}" for a in h.train_accuracy),
                                valid_curve=' '.join(f"{100 * a:.0f}" for a in h.valid_accuracy))
            print(rows[-1], flush=True)
    return rows

def curriculum_table(df, args):
    out = [f"1. curriculum: small conv net from scratch, CIFAR-10 10 classes, {args.n_train} train / {args.n_valid} valid "
           f"images per class, {args.epochs} epochs Adam lr {args.lr}; ProgressiveAugmentCallback(min_train_accuracy="
           f"{args.min_train_acc}, patience={args.patience}, monitor='valid_accuracy'); validation accuracy in % "
           f"(mean ± sd over seeds {sorted(int(s) for s in df.seed.unique())}; final epoch and best epoch)",
           df.groupby('arm', sort=False)[['final', 'best']].agg(mean_sd).to_string(),
           "curriculum: stage per epoch (0 = no augmentation), training and validation accuracy per epoch (%)"]
    for _, r in df[df.arm == 'curriculum'].iterrows():
        moved = [i for i in range(1, len(r.stages)) if r.stages[i] > r.stages[i - 1]]
        out += [f"seed {r.seed}: stages {r.stages}; moved on after epochs {[i - 1 for i in moved]}",
                f"  train {r.train_curve}", f"  valid {r.valid_curve}"]
    return out

def mean_sd(s): return f"{s.mean():.1f} ± {s.std(ddof=1):.1f}"

def fashion(split, n):
    "n Fashion-MNIST images per class, padded to 32x32, 3 channels, ImageNet-normalised."
    path = shared_data('fashion_mnist')
    xs, ys = [], []
    for c in range(10):
        files = sorted((path/split/str(c)).iterdir())[:n]
        xs.append(torch.tensor(np.stack([np.asarray(Image.open(f).convert('L')) for f in files]))); ys.append(torch.full((len(files),), c))
    x = nn.functional.pad(torch.cat(xs).float() / 255, (2, 2, 2, 2))[:, None].expand(-1, 3, -1, -1)
    mean, std = (torch.tensor(s).view(1, 3, 1, 1) for s in imagenet_stats)
    return ((x - mean) / std).contiguous(), torch.cat(ys)

def finetune_part(args, seeds):
    (x, y), (xv, yv) = fashion('train', args.ft_train), fashion('test', args.n_valid)
    rows = []
    for seed in seeds:
        for arm in ('freeze (head only)', 'fine-tune (all layers)'):
            set_seed(seed)
            m = resnet20(resnet_weights(20)); m.linear = nn.Linear(64, 10)
            if arm.startswith('freeze'):
                for n, p in m.named_parameters(): p.requires_grad_(n.startswith('linear'))
            learn = Learner(dls_of(x, y, xv, yv), m, loss_func=nn.CrossEntropyLoss(), metrics=accuracy)
            with learn.no_bar(), learn.no_logging():
                learn.fit(args.ft_epochs, args.lr)
                valid_acc = float(learn.recorder.values[-1][2])
                train_acc = float(learn.validate(dl=DataLoader(list(zip(map(TensorImage, x), y)), bs=256))[1])
            rows.append(dict(part='finetune', seed=seed, arm=arm, train=100 * train_acc, valid=100 * valid_acc))
            print(rows[-1], flush=True)
    return rows

def finetune_table(df, args):
    return [f"\n2. freeze vs fine-tune: CIFAR-10 ResNet-20 (pretrained) -> Fashion-MNIST, {args.ft_train} train / {args.n_valid} "
            f"valid images per class, {args.ft_epochs} epochs Adam lr {args.lr}; accuracy in % after the last epoch "
            f"(mean ± sd over seeds {sorted(int(s) for s in df.seed.unique())}; train: the training images in eval mode)",
            df.groupby('arm', sort=False)[['train', 'valid']].agg(mean_sd).to_string()]

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--seeds', default='0,1,2'); p.add_argument('--epochs', type=int, default=40)
    p.add_argument('--n-train', type=int, default=50); p.add_argument('--n-valid', type=int, default=100)
    p.add_argument('--min-train-acc', type=float, default=0.95); p.add_argument('--patience', type=int, default=1)
    p.add_argument('--lr', type=float, default=1e-3)
    p.add_argument('--ft-train', type=int, default=50); p.add_argument('--ft-epochs', type=int, default=5)
    p.add_argument('--parts', default='curriculum,finetune'); p.add_argument('--out', default=None)
    p.add_argument('--csv', default=None, help='every run, for --merge')
    p.add_argument('--merge', nargs='+', default=None, help='CSVs of earlier runs (same settings) to join; nothing is trained')
    args = p.parse_args()
    torch.set_num_threads(1)
    seeds = [int(s) for s in args.seeds.split(',')]
    out = [f"# OMP_NUM_THREADS=1 python bench/curriculum_study.py {shlex.join(sys.argv[1:])}   "
           f"(run {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, torch {torch.__version__})"]
    print(out[0], flush=True)
    if args.merge:
        df = pd.concat([pd.read_csv(f, comment='#', dtype={'stages': str}) for f in args.merge])
        out += ['joins the runs:'] + [Path(f).with_suffix('.txt').read_text().splitlines()[0] for f in args.merge]
    else:
        rows = []
        if 'curriculum' in args.parts: rows += curriculum_part(args, seeds)
        if 'finetune' in args.parts: rows += finetune_part(args, seeds)
        df = pd.DataFrame(rows)
    if args.csv: Path(args.csv).write_text(out[0] + '\n' + df.to_csv(index=False))
    if 'part' in df and (df.part == 'curriculum').any(): out += curriculum_table(df[df.part == 'curriculum'], args)
    if 'part' in df and (df.part == 'finetune').any(): out += finetune_table(df[df.part == 'finetune'], args)
    print('\n'.join(out))
    if args.out: Path(args.out).write_text('\n'.join(out) + '\n')

if __name__ == '__main__': main()
