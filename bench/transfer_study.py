"""How transferable are features (Yosinski et al. 2014), study 003, in small: AnB/BnB over n on CIFAR-10 halves.

Net: 4 convs (16, 32, 32, 64 channels, 3x3, each followed by ReLU and 2x2 max-pool) and 2 linear layers (64 hidden,
then the classifier), no BatchNorm (as the paper's net has none; nothing but weights travels), He-normal init.
So L = 5 transferable weight layers (the classifier is always new), the paper's n = 1..7 of 8.
Data: CIFAR-10 (the shared JPEG copy) at 32x32, `--train` images per class from the training set, `--valid` per
class from the test set, random horizontal flips; each network trains `--epochs` epochs of Adam with a one-cycle
learning rate (`--lr`), batch 64, on one CPU thread. Per seed s:
- random halves: `split_classes(cifar10, seed=s)` gives 5 vs 5 classes; base A, base B, then for n = 1..5
  BnB, BnB+ (from base B), AnB, AnB+ (from base A) via `transfer(src, net, n, freeze)`, and the paper's
  random-weights control (sec. 4.3): the first n layers of an untrained net, frozen (`transfer` from a fresh net).
- dissimilar split (sec. 4.2): man-made {airplane, automobile, ship, truck} vs natural: CIFAR-10 has 6 animal
  classes, so to keep 4 vs 4 each seed draws 4 of the 6 (the paper's split was 551 vs 449, uneven); its control is
  a random 4 vs 4 split of the same 8 classes, so the two differ only in how the classes are split. For both: base
  A, base B, AnB and BnA for n = 1..5 (frozen), compared as accuracy minus the target's base (the paper's Fig. 3).
All variants of one (seed, n) start from the same initial weights and batch order for the layers they train.
Prints the tables (mean +- sd over seeds) and writes every run to `--csv`: the command line, then CSV rows (kept as
.txt, since bench/results keeps only text files); nbs/41_transfer.ipynb plots from it.
Usage: OMP_NUM_THREADS=1 python bench/transfer_study.py [--seeds 0,1,2] [--epochs 5] [--train 300] [--valid 300]
       [--out bench/results/transfer_study.txt] [--csv bench/results/transfer_study_runs.txt]
  or, seeds run in parallel processes (each with its own --csv and --out), then joined:
       python bench/transfer_study.py --merge seed0.csv seed1.csv seed2.csv --out ... --csv ...
  (--merge copies the first line of each CSV's .txt, the command that made it, into the joined report)
"""
import argparse, datetime, random, shlex, sys, time
from pathlib import Path
import numpy as np, pandas as pd, torch
from PIL import Image
from torch import nn
import torch.nn.functional as F
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fastprune.data import shared_data
from fastprune.studies.transfer import transfer, split_classes

MAN_MADE = ['airplane', 'automobile', 'ship', 'truck']
NATURAL = ['bird', 'cat', 'deer', 'dog', 'frog', 'horse']
L = 5  # transferable weight layers of `net`
MEAN, STD = torch.tensor([0.491, 0.482, 0.447]).view(1, 3, 1, 1), torch.tensor([0.247, 0.243, 0.261]).view(1, 3, 1, 1)

def net(n_classes, widths=(16, 32, 32, 64), hidden=64):
    "The study's net: convs with ReLU and max-pool, then hidden and classifier linear layers (6 weight layers)."
    layers, ci = [], 3
    for c in widths: layers += [nn.Conv2d(ci, c, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]; ci = c
    m = nn.Sequential(*layers, nn.Flatten(), nn.Linear(ci * 4, hidden), nn.ReLU(), nn.Linear(hidden, n_classes))
    for l in m:
        if isinstance(l, (nn.Conv2d, nn.Linear)): nn.init.kaiming_normal_(l.weight, nonlinearity='relu'); nn.init.zeros_(l.bias)
    return m

def load_images(path, split, cls, n):
    "The first `n` images of class `cls` (sorted file names) as a normalised float tensor."
    files = sorted((path/split/cls).iterdir())[:n]
    x = torch.tensor(np.stack([np.asarray(Image.open(f).convert('RGB')) for f in files])).permute(0, 3, 1, 2)
    return (x.float() / 255 - MEAN) / STD

class Task:
    "Train and validation tensors of a list of classes, labelled 0.. in the list's order."
    def __init__(self, images, classes):
        self.classes = list(classes)
        for s in ('train', 'valid'):
            setattr(self, s, (torch.cat([images[s][c] for c in classes]),
                              torch.cat([torch.full((len(images[s][c]),), i) for i, c in enumerate(classes)])))

def fit(model, task, epochs, lr, seed):
    "Train the parameters of `model` that require grad (Adam, one-cycle); return validation accuracy in %."
    torch.manual_seed(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    x, y = task.train
    steps = epochs * ((len(x) + 63) // 64)
    opt = torch.optim.Adam(params, lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps)
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(x))
        for i in range(0, len(x), 64):
            idx = perm[i:i + 64]
            xb = x[idx]
            xb = torch.where(torch.rand(len(idx), 1, 1, 1) < 0.5, xb.flip(3), xb)
            loss = F.cross_entropy(model(xb), y[idx])
            opt.zero_grad(); loss.backward(); opt.step(); sched.step()
    model.eval()
    with torch.no_grad():
        xv, yv = task.valid
        pred = torch.cat([model(xv[i:i + 500]).argmax(1) for i in range(0, len(xv), 500)])
    return 100 * (pred == yv).float().mean().item()

def pair_study(images, a, b, seed, args, split, variants):
    "Bases on A and B, then each variant for n = 1..L; one row per trained network."
    ta, tb = Task(images, a), Task(images, b)
    rows, t0 = [], time.time()
    def row(variant, n, acc): rows.append(dict(split=split, seed=seed, variant=variant, n=n, accuracy=acc))
    torch.manual_seed(10 * seed); base_a = net(len(a)); row('baseA', 0, fit(base_a, ta, args.epochs, args.lr, 10 * seed))
    torch.manual_seed(10 * seed + 1); base_b = net(len(b)); row('baseB', 0, fit(base_b, tb, args.epochs, args.lr, 10 * seed + 1))
    srcs = dict(BnB=(base_b, tb, True), **{'BnB+': (base_b, tb, False)}, AnB=(base_a, tb, True), **{'AnB+': (base_a, tb, False)},
                BnA=(base_b, ta, True))
    for n in range(1, L + 1):
        for v in variants:
            s = 1000 * seed + 10 * n
            if v == 'random':  # the first n layers of an untrained net, frozen
                torch.manual_seed(s + 7); src, task, freeze = net(len(b)), tb, True
            else: src, task, freeze = srcs[v]
            torch.manual_seed(s); dst = transfer(src, net(len(task.classes)), n, freeze)
            row(v, n, fit(dst, task, args.epochs, args.lr, s))
        print(f"  {split} seed {seed} n={n} done ({time.time() - t0:.0f} s)", flush=True)
    return rows

def mean_sd(s): return f"{s.mean():5.1f} ± {s.std(ddof=1) if len(s) > 1 else float('nan'):3.1f}"

def tables(df):
    "The text tables: accuracy per variant and n (mean ± sd over seeds), and the dissimilar split against its control."
    out = []
    r = df[df.split == 'random halves']
    base = r[r.variant == 'baseB'].accuracy
    out.append(f"random 5/5 halves: accuracy on B in % (mean ± sd over {r.seed.nunique()} seeds); "
               f"n = 0 is base B ({mean_sd(base)}); base A {mean_sd(r[r.variant == 'baseA'].accuracy)}")
    cols = [c for c in ('BnB', 'BnB+', 'AnB', 'AnB+', 'random') if c in set(r.variant)]
    out.append(r[r.n > 0].groupby(['n', 'variant']).accuracy.apply(mean_sd).unstack()[cols].to_string())
    d = r[r.n > 0].merge(r[r.variant == 'baseB'][['seed', 'accuracy']], on='seed', suffixes=('', '_base'))
    d['delta'] = d.accuracy - d.accuracy_base
    out.append("\nsame, minus base B of the same seed (points):")
    out.append(d.groupby(['n', 'variant']).delta.apply(mean_sd).unstack()[cols].to_string())
    rel = []  # the target's base of the same seed and split: B for AnB, A for BnA
    for sp in ('dissimilar (man-made/natural)', 'random 4/4 (same 8 classes)'):
        s = df[df.split == sp]
        if s.empty: continue
        for v, tgt in (('AnB', 'baseB'), ('BnA', 'baseA')):
            x = s[s.variant == v].merge(s[s.variant == tgt][['seed', 'accuracy']], on='seed', suffixes=('', '_base'))
            rel.append(x.assign(delta=x.accuracy - x.accuracy_base, split=sp))
    if rel:
        rel = pd.concat(rel)
        out.append("\n4 vs 4 splits of the same 8 classes: frozen transfer minus the target's base (points; AnB: A -> B, "
                   "BnA: B -> A; dissimilar: A = man-made, B = natural)")
        for sp, s in df[df.split != 'random halves'].groupby('split'):
            out.append(f"  {sp}: base A {mean_sd(s[s.variant == 'baseA'].accuracy)}, base B {mean_sd(s[s.variant == 'baseB'].accuracy)}")
        out.append(rel.groupby(['n', 'split', 'variant']).delta.apply(mean_sd).unstack(['split', 'variant']).to_string())
        both = rel.groupby(['split', 'seed']).delta.mean().groupby('split').apply(mean_sd)
        out.append("mean over n = 1..5 and both directions:\n" + both.to_string())
    return '\n'.join(out)

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--seeds', default='0,1,2', help='comma list of seeds'); p.add_argument('--epochs', type=int, default=5)
    p.add_argument('--train', type=int, default=300); p.add_argument('--valid', type=int, default=300)
    p.add_argument('--lr', type=float, default=3e-3)
    p.add_argument('--parts', default='random,dissimilar', help="comma list of 'random' and 'dissimilar'")
    p.add_argument('--out', default=None); p.add_argument('--csv', default=None)
    p.add_argument('--merge', nargs='+', default=None, help='CSVs of earlier runs to join (nothing is trained)')
    args = p.parse_args()
    torch.set_num_threads(1)
    head = (f"# OMP_NUM_THREADS=1 python bench/transfer_study.py {shlex.join(sys.argv[1:])}   "
            f"(run {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, torch {torch.__version__})")
    print(head, flush=True)
    if args.merge:
        df = pd.concat([pd.read_csv(f, comment='#') for f in args.merge])
        runs = [Path(f).with_suffix('.txt').read_text().splitlines()[:2] for f in args.merge]
        report = '\n'.join([head, 'joins the runs:', *[l for r in runs for l in r], tables(df)])
        print(report)
        if args.out: Path(args.out).write_text(report + '\n')
        if args.csv: Path(args.csv).write_text(head + '\n' + df.to_csv(index=False))
        return
    path = shared_data('cifar10')
    classes = split_classes(path).a + split_classes(path).b
    images = {s: {c: load_images(path, d, c, n) for c in classes} for s, d, n in (('train', 'train', args.train), ('valid', 'test', args.valid))}
    rows = []
    def save():
        if args.csv: Path(args.csv).write_text(head + '\n' + pd.DataFrame(rows).to_csv(index=False))
    seeds = [int(x) for x in args.seeds.split(',')]
    for seed in seeds:
        if 'random' in args.parts:
            halves = split_classes(path, seed=seed)
            print(f"seed {seed}: {halves}", flush=True)
            rows += pair_study(images, halves.a, halves.b, seed, args, 'random halves', ('BnB', 'BnB+', 'AnB', 'AnB+', 'random')); save()
        if 'dissimilar' in args.parts:
            natural = sorted(random.Random(seed).sample(NATURAL, 4))
            shuffled = random.Random(100 + seed).sample(MAN_MADE + natural, 8)
            for split, (a, b) in (('dissimilar (man-made/natural)', (MAN_MADE, natural)),
                                  ('random 4/4 (same 8 classes)', (sorted(shuffled[:4]), sorted(shuffled[4:])))):
                print(f"seed {seed}, {split}: A={a}, B={b}", flush=True)
                rows += pair_study(images, a, b, seed, args, split, ('AnB', 'BnA')); save()
    report = '\n'.join([head, f"CIFAR-10 JPEG, {args.train} train / {args.valid} valid images per class, "
                        f"{args.epochs} epochs Adam one-cycle lr {args.lr}, seeds {seeds}", tables(pd.DataFrame(rows))])
    print(report)
    if args.out: Path(args.out).write_text(report + '\n')

if __name__ == '__main__': main()
