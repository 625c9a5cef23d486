"""Inference speed-up of filter pruning, measured side by side: dense vs 50%-filter-pruned-and-compacted.

For the demo network (`vgg_bn` on 32x32 inputs) and the pretrained CIFAR ResNet-56, half the units of every prunable
coupling group are removed by `prune_units` (lowest L1 norm first). BatchNorm is folded into the convolutions of both
the dense and the pruned model (`fold_bn`), as for deployment. All models, backends (torch, onnxruntime) and batch
sizes (1, 64) are timed in ONE interleaved loop (`benchmark_inference`), so machine noise hits every contender alike.
Printed: median latency of dense and pruned, the speed-up, the FLOPs ratio (torch.utils.flop_counter) and the
speed-up as a fraction of the FLOPs ratio. Target: >= 90 % of the FLOPs ratio at batch 64.

Run from the repository root (fastprune installed, or PYTHONPATH=.):
    OMP_NUM_THREADS=1 python bench/deploy.py [--n-repeats 10] [--multiple-of 16]
"""
import argparse, copy, os
from pathlib import Path
import torch
from torch.utils.flop_counter import FlopCounterMode
from fastprune.models import vgg_bn, resnet56
from fastprune.surgery.edit import prune_units
from fastprune.deploy import benchmark_inference, fold_bn, _l1_units

WEIGHTS = Path(__file__).resolve().parents[1].parent/'shared/data/weights/resnet56-4bfd9763.th'
TARGET = 0.9

def flops(model, x):
    with FlopCounterMode(display=False) as fc, torch.no_grad(): model(x)
    return fc.get_total_flops()

def dense_and_pruned(model, x, fraction, multiple_of):
    model.eval()
    pruned = prune_units(copy.deepcopy(model), _l1_units(model, x, fraction, multiple_of), x)
    return fold_bn(model), fold_bn(pruned)

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--n-repeats', type=int, default=10, help='interleaved timing rounds')
    p.add_argument('--fraction', type=float, default=0.5, help='fraction of units removed from every prunable group')
    p.add_argument('--multiple-of', type=int, default=1,
                   help='keep a multiple of this many units per group (16 = onnxruntime NCHWc block on AVX-512)')
    p.add_argument('--weights', default=str(WEIGHTS), help='ResNet-56 checkpoint')
    args = p.parse_args()
    torch.manual_seed(0)
    x = torch.randn(1, 3, 32, 32)
    nets = {'vgg_bn': vgg_bn(), 'resnet56': resnet56(args.weights)}
    models, flops_ratio = {}, {}
    for name, net in nets.items():
        dense, pruned = dense_and_pruned(net, x, args.fraction, args.multiple_of)
        models[f'{name} dense'], models[f'{name} pruned'] = dense, pruned
        fd, fp = flops(dense, x), flops(pruned, x)
        flops_ratio[name] = fd / fp
        n = lambda m: sum(p.numel() for p in m.parameters())
        print(f'{name}: params {n(dense):,} -> {n(pruned):,}; FLOPs {fd/1e6:.1f}M -> {fp/1e6:.1f}M ({fd/fp:.2f}x fewer)')
    print(f'threads: torch {torch.get_num_threads()} (onnxruntime gets the same); OMP_NUM_THREADS={os.environ.get("OMP_NUM_THREADS")}')
    df = benchmark_inference(models, x, backends=('torch', 'onnxruntime'), batch_sizes=(1, 64), n_repeats=args.n_repeats)
    df['net'], df['kind'] = zip(*df.model.str.split(' '))
    t = df.pivot_table(index=['net', 'backend', 'batch_size'], columns='kind', values='median_ms').reset_index()
    t['speedup'] = t['dense'] / t['pruned']
    t['flops_ratio'] = t.net.map(flops_ratio)
    t['of_flops_ratio'] = t.speedup / t.flops_ratio
    print(f'\nmedian latency (ms) over {args.n_repeats} interleaved rounds; pruned = {args.fraction:.0%} of the units '
          f'of every prunable group removed'
          f'{f" (kept units rounded up to a multiple of {args.multiple_of})" if args.multiple_of > 1 else ""}, then compacted; BN folded in both')
    print(t.to_string(index=False, float_format=lambda v: f'{v:.3f}'))
    at64 = t[t.batch_size == 64]
    ok = (at64.of_flops_ratio >= TARGET).all()
    print(f'\nbatch 64: speed-up / FLOPs ratio = ' + ', '.join(f'{r.net} {r.backend} {r.of_flops_ratio:.0%}' for r in at64.itertuples())
          + f'  -> target >= {TARGET:.0%}: {"met" if ok else "NOT met"}')

if __name__ == '__main__': main()
