"""Speed-up from filter surgery: FLOPs ratio vs measured CPU latency ratio, dense / pruned, side by side.

For each network, half the units of every prunable coupling group (lowest L1 norm first, `fastprune.deploy._l1_units`)
are removed with `prune_units`. By default the number of kept units per group is rounded UP to a multiple of 16
(`--multiple-of`; 1 = plain 50%), BatchNorm is folded into the convolutions of BOTH networks (`fold_bn`; `--no-fold-bn`
keeps it) and both run in the channels-last memory format (`--no-channels-last` keeps NCHW). FLOPs are counted with
`torch.utils.flop_counter.FlopCounterMode` at batch 1 on the actual dense and pruned networks (after rounding), so
the FLOPs ratio is that of the nets timed. Latency is the median over `--repeats` interleaved runs (dense, pruned,
dense, pruned...) of one forward pass in inference mode, at batch 1 and batch 64, measured as process CPU time (one
thread; robust to other jobs sharing the cores) and wall-clock time.
Also times `trace` + `prune_units` on ResNet-50 at 224x224 (after one warm-up call, which pays one-time imports).

Why these defaults: FLOPs count convs and matmuls only, whose cost shrinks with in x out channels (4x at 50%), while
BatchNorm, activations and pooling shrink with the channel count only (2x): folding BN removes one of them, and
channels-last makes pooling/activations vectorised. CPU convolution kernels (oneDNN) block channels by 8 or 16 on
AVX-512, so a layer with 12 or 24 channels pays for 16 or 32: rounding the kept counts avoids paying for padding.

Usage: OMP_NUM_THREADS=1 python bench/speedup.py [--repeats 11] [--size 64] [--only vgg16_bn ...]
       [--multiple-of 16] [--no-fold-bn] [--no-channels-last]
"""
import argparse, copy, statistics, sys, time, warnings
from pathlib import Path
import torch
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from fastprune.surgery.edit import prune_units
from fastprune.deploy import fold_bn, _l1_units
from fastprune.report import _flops

TARGET = 0.9

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

def timed(model, x):
    with torch.inference_mode():
        c, t = time.process_time(), time.perf_counter()
        model(x)
        return time.process_time() - c, time.perf_counter() - t

def latency_ratio(dense, pruned, x, repeats):
    "(cpu ratio, wall ratio, dense cpu median s): median dense time / median pruned time over interleaved runs."
    for _ in range(2): timed(dense, x); timed(pruned, x)  # warm-up (oneDNN primitive and weight caches)
    d, p = [], []
    for _ in range(repeats): d.append(timed(dense, x)); p.append(timed(pruned, x))
    med = lambda ts, i: statistics.median(t[i] for t in ts)
    return med(d, 0) / med(p, 0), med(d, 1) / med(p, 1), med(d, 0)

def for_inference(model, fold, channels_last):
    "The deployment form timed for both nets: eval mode, BN folded (optional), channels-last (optional)."
    model = fold_bn(model) if fold else model.eval()
    return model.to(memory_format=torch.channels_last) if channels_last else model

def surgery_time(repeats=3):
    import torchvision
    x = torch.randn(1, 3, 224, 224)
    ts = []
    for i in range(repeats + 1):
        m = torchvision.models.resnet50(weights=None)
        c, t = time.process_time(), time.perf_counter()
        prune_units(m, _l1_units(m, x, 0.5), x)  # trace (to choose units) + prune_units (traces again, edits)
        ts.append((time.process_time() - c, time.perf_counter() - t))
    return ts[0], tuple(statistics.median(t[i] for t in ts[1:]) for i in (0, 1))

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--repeats', type=int, default=11)
    p.add_argument('--size', type=int, default=64, help='input size for the ImageNet models')
    p.add_argument('--batches', type=int, nargs='*', default=[1, 64])
    p.add_argument('--only', nargs='*')
    p.add_argument('--fraction', type=float, default=0.5, help='fraction of the units of every prunable group removed')
    p.add_argument('--multiple-of', type=int, default=16, help='round kept units per group up to a multiple of this (1 = plain)')
    p.add_argument('--no-fold-bn', dest='fold_bn', action='store_false', help='keep BatchNorm layers (default: folded in both nets)')
    p.add_argument('--no-channels-last', dest='channels_last', action='store_false', help='NCHW (default: channels-last in both nets)')
    p.add_argument('--no-surgery-time', dest='surgery_time', action='store_false', help='skip timing ResNet-50 surgery')
    a = p.parse_args()
    torch.set_num_threads(1); torch.manual_seed(0)
    warnings.simplefilter('ignore')
    if a.surgery_time:
        cold, warm = surgery_time()
        print(f"ResNet-50 trace + prune_units(50% of every group) at 224x224: {warm[0]:.2f} s CPU, {warm[1]:.2f} s wall "
              f"(first call, incl. one-time imports: {cold[0]:.2f} s CPU, {cold[1]:.2f} s wall)")
    done = [f"{a.fraction:.0%} of the units of every prunable group removed (lowest L1)"
            + (f", kept units rounded up to a multiple of {a.multiple_of}" if a.multiple_of > 1 else ""),
            "BN folded into the convs" if a.fold_bn else "BN kept (not folded)",
            "channels-last" if a.channels_last else "NCHW"]
    print(f"pruned: {done[0]}; both nets: {', '.join(done[1:])}; eval, inference_mode, {torch.get_num_threads()} thread; "
          f"median of {a.repeats} interleaved runs")
    print(f"{'net':18s} {'params':>7s} {'FLOPs x':>8s} " + ' '.join(f"{'bs'+str(b)+' cpu x':>10s} {'wall x':>7s} {'share':>6s}" for b in a.batches))
    shares = {}
    for name, (make, s) in _nets(a.size).items():
        if a.only and name.split()[0] not in a.only: continue
        dense = make().eval()
        x1 = torch.randn(1, 3, s, s)
        pruned = prune_units(copy.deepcopy(dense), _l1_units(dense, x1, a.fraction, a.multiple_of), x1)
        dense, pruned = (for_inference(m, a.fold_bn, a.channels_last) for m in (dense, pruned))
        fr = _flops(dense, x1)[0] / _flops(pruned, x1)[0]
        pr = sum(q.numel() for q in dense.parameters()) / sum(q.numel() for q in pruned.parameters())
        cols = []
        for b in a.batches:
            x = torch.randn(b, 3, s, s)
            if a.channels_last: x = x.contiguous(memory_format=torch.channels_last)
            c, w, _ = latency_ratio(dense, pruned, x, a.repeats)
            cols.append(f"{c:10.2f} {w:7.2f} {c/fr:6.0%}")
            shares[(name, b)] = c / fr
        print(f"{name:18s} {pr:6.2f}x {fr:7.2f}x " + ' '.join(cols), flush=True)
    print("x = dense / pruned; share = measured CPU speed-up / FLOPs ratio (FLOPs of the nets timed, after rounding)")
    if 64 in a.batches:
        miss = [n for (n, b), v in shares.items() if b == 64 and v < TARGET]
        print(f"batch 64, target share >= {TARGET:.0%}: " + ("met by every net" if not miss else f"NOT met by {', '.join(miss)}"))

if __name__ == '__main__': main()
