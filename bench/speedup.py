"""Speed-up from filter surgery: FLOPs ratio vs measured CPU latency ratio, dense / pruned, side by side.

For each network, 50% of the units of every prunable group (random, seed 0) are removed with `prune_units`. FLOPs
are counted with `torch.utils.flop_counter.FlopCounterMode` at batch 1; latency is the median over `--repeats`
interleaved runs (dense, pruned, dense, pruned...) of one forward pass in inference mode, at batch 1 and batch 64,
measured as process CPU time (single thread; robust to other jobs sharing the cores) and wall-clock time.
Also times `trace` + `prune_units` on ResNet-50 at 224x224 (after one warm-up call, which pays one-time imports).
`--fuse-bn` folds BatchNorm into the convs of both networks first (`torch.fx.experimental.optimization.fuse`), as a
deployment would; FLOPs ratios count convs and matmuls only, so unfused BatchNorm/activations/pooling, which shrink
with the channel count (2x) rather than with in x out channels (4x), pull the measured ratio below it.

Usage: OMP_NUM_THREADS=1 python bench/speedup.py [--repeats 5] [--size 64] [--only vgg16_bn ...] [--fuse-bn]
"""
import argparse, copy, random, statistics, sys, time, warnings
from pathlib import Path
import torch
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from torch.utils.flop_counter import FlopCounterMode
from torch.fx.experimental.optimization import fuse
from fastprune.surgery.graph import trace
from fastprune.surgery.edit import prune_units

def _nets(size):
    "name -> (factory, input size)."
    import torchvision
    nets = {}
    try:
        from fastprune.models import vgg_bn, resnet56
        nets['vgg16_bn (CIFAR)'] = (lambda: vgg_bn(widths=((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512)), fc=512), 32)
        nets['resnet56 (CIFAR)'] = (resnet56, 32)
    except ImportError as e: print(f"fastprune.models unavailable ({e}): skipping the VGG-style net and ResNet-56")
    for n in ('resnet18', 'resnet50', 'mobilenet_v2'): nets[n] = (lambda n=n: torchvision.models.get_model(n, weights=None), size)
    return nets

def half_units(model, x, frac=0.5, seed=0):
    rng = random.Random(seed)
    return {g.producers[0]: rng.sample(range(g.size), int(frac * g.size)) for g in trace(model, x).prunable if g.size > 1}

def flops(model, x):
    with FlopCounterMode(display=False) as fc, torch.inference_mode(): model(x)
    return fc.get_total_flops()

def timed(model, x):
    with torch.inference_mode():
        c, t = time.process_time(), time.perf_counter()
        model(x)
        return time.process_time() - c, time.perf_counter() - t

def latency_ratio(dense, pruned, x, repeats):
    "(cpu ratio, wall ratio, dense cpu median s): median dense time / median pruned time over interleaved runs."
    timed(dense, x); timed(pruned, x)  # warm-up
    d, p = [], []
    for _ in range(repeats): d.append(timed(dense, x)); p.append(timed(pruned, x))
    med = lambda ts, i: statistics.median(t[i] for t in ts)
    return med(d, 0) / med(p, 0), med(d, 1) / med(p, 1), med(d, 0)

def surgery_time(repeats=3):
    import torchvision
    x = torch.randn(1, 3, 224, 224)
    ts = []
    for i in range(repeats + 1):
        m = torchvision.models.resnet50(weights=None)
        c, t = time.process_time(), time.perf_counter()
        prune_units(m, half_units(m, x), x)  # trace (to choose units) + prune_units (traces again, edits)
        ts.append((time.process_time() - c, time.perf_counter() - t))
    return ts[0], tuple(statistics.median(t[i] for t in ts[1:]) for i in (0, 1))

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--repeats', type=int, default=5)
    p.add_argument('--size', type=int, default=64, help='input size for the ImageNet models')
    p.add_argument('--batches', type=int, nargs='*', default=[1, 64])
    p.add_argument('--only', nargs='*')
    p.add_argument('--fuse-bn', action='store_true', help='fold BatchNorm into convs (eval) before timing')
    a = p.parse_args()
    torch.set_num_threads(1); torch.manual_seed(0)
    warnings.simplefilter('ignore')
    cold, warm = surgery_time()
    print(f"ResNet-50 trace + prune_units(50% of every group) at 224x224: {warm[0]:.2f} s CPU, {warm[1]:.2f} s wall "
          f"(first call, incl. one-time imports: {cold[0]:.2f} s CPU, {cold[1]:.2f} s wall)")
    print(f"{'net':18s} {'params':>7s} {'FLOPs x':>8s} " + ' '.join(f"{'bs'+str(b)+' cpu x':>10s} {'wall x':>7s} {'eff':>5s}" for b in a.batches))
    for name, (make, s) in _nets(a.size).items():
        if a.only and name.split()[0] not in a.only: continue
        dense = make().eval()
        x1 = torch.randn(1, 3, s, s)
        pruned = prune_units(copy.deepcopy(dense), half_units(dense, x1), x1).eval()
        if a.fuse_bn: dense, pruned = fuse(dense), fuse(pruned)
        fr = flops(dense, x1) / flops(pruned, x1)
        pr = sum(q.numel() for q in dense.parameters()) / sum(q.numel() for q in pruned.parameters())
        cols = []
        for b in a.batches:
            c, w, _ = latency_ratio(dense, pruned, torch.randn(b, 3, s, s), a.repeats)
            cols.append(f"{c:10.2f} {w:7.2f} {c/fr:5.0%}")
        print(f"{name:18s} {pr:6.2f}x {fr:7.2f}x " + ' '.join(cols), flush=True)
    print("x = dense / pruned; eff = measured CPU speed-up / FLOPs ratio")

if __name__ == '__main__': main()
