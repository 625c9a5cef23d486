"""Speed-up from filter surgery: FLOPs ratio vs measured CPU latency ratio, dense / pruned, side by side.

For each network, half the units of every prunable coupling group (lowest L1 norm first, `fastprune.deploy.l1_units`)
are removed with `prune_units`. By default the number of kept units per group is rounded UP to a multiple of 16
(`--multiple-of`; 1 = plain 50%) and BatchNorm is folded into the convolutions of BOTH networks (`fold_bn`;
`--no-fold-bn` keeps it). FLOPs are counted with `torch.utils.flop_counter.FlopCounterMode` at batch 1 on the actual
dense and pruned networks (after rounding), so the FLOPs ratio is that of the nets timed. Latency is timed by
`fastprune.deploy.benchmark_inference`, every net, runtime and batch size in ONE interleaved loop, as the median of
`--repeats` runs of process CPU time (one thread; robust to other jobs sharing the cores), in two CPU runtimes:
PyTorch eager in the channels-last memory format (`torch_channels_last`) and onnxruntime on the exported ONNX graph
(`onnxruntime`); `--backends` picks others (`torch` = NCHW). The process keeps the memory it frees
(`steady_allocator` from bench/deploy.py, which says why; `--default-malloc` turns it off).
The CIFAR ResNet-56 uses the pretrained weights in `../shared/data/weights` (`--weights`), the others random weights.
Beyond the CNNs: torchvision's ViT-B/16 (at `--vit-size`; its prunable groups are the 12 blocks' attention heads and
MLP hidden units, so half of each block's heads and MLP units go; a head is 64 channels, so rounding keeps whole
heads) and a segmentation net, LR-ASPP MobileNetV3-Large (at `--seg-size`).
Also times `trace` + `prune_units` on ResNet-50 at 224x224 (after one warm-up call, which pays one-time imports).

Why these defaults: FLOPs count convs and matmuls only, whose cost shrinks with in x out channels (4x at 50%), while
BatchNorm, activations and pooling shrink with the channel count only (2x): folding BN removes one of them,
channels-last makes pooling/activations vectorised, and onnxruntime also fuses each activation into its conv (PyTorch
eager runs it as a separate pass over memory, which is what keeps MobileNetV2's ReLU6s from shrinking with the
FLOPs). CPU convolution kernels (oneDNN, onnxruntime's NCHWc) block channels by 8 or 16 on AVX-512, so a layer with
12 or 24 channels pays for 16 or 32: rounding the kept counts avoids paying for padding.

Usage: OMP_NUM_THREADS=1 python bench/speedup.py [--repeats 11] [--size 64] [--vit-size 64] [--seg-size 128] [--only vgg16_bn ...]
       [--multiple-of 16] [--no-fold-bn] [--backends torch_channels_last onnxruntime] [--default-malloc]
"""
import argparse, statistics, sys, time, warnings
from pathlib import Path
import torch
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from fastprune.surgery.edit import prune_units
from fastprune.deploy import benchmark_inference, l1_units
from fastprune.report import count_flops
from deploy import dense_and_pruned, steady_allocator  # bench/deploy.py: the same dense and pruned deployment forms

TARGET = 0.9
WEIGHTS = Path(__file__).resolve().parents[1].parent/'shared/data/weights/resnet56-4bfd9763.th'

def _nets(size, weights, vit_size, seg_size):
    "name -> (factory, input size)."
    import torchvision
    from fastprune.models import vgg_bn, resnet56
    if not Path(weights).exists(): print(f"{weights} not found: ResNet-56 gets random weights"); weights = None
    nets = {'vgg16_bn (CIFAR)': (lambda: vgg_bn(widths=((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512)), fc=512), 32),
            'resnet56 (CIFAR)': (lambda: resnet56(weights), 32)}
    for n in ('resnet18', 'resnet50', 'mobilenet_v2'): nets[n] = (lambda n=n: torchvision.models.get_model(n, weights=None), size)
    nets['vit_b_16'] = (lambda: torchvision.models.vit_b_16(weights=None, image_size=vit_size), vit_size)
    nets['lraspp_mobilenet_v3_large'] = (lambda: torchvision.models.get_model('lraspp_mobilenet_v3_large', weights=None,
                                                                              weights_backbone=None), seg_size)
    return nets

def surgery_time(repeats=3):
    import torchvision
    x = torch.randn(1, 3, 224, 224)
    ts = []
    for i in range(repeats + 1):
        m = torchvision.models.resnet50(weights=None)
        c, t = time.process_time(), time.perf_counter()
        prune_units(m, l1_units(m, x, 0.5), x)  # trace (to choose units) + prune_units (traces again, edits)
        ts.append((time.process_time() - c, time.perf_counter() - t))
    return ts[0], tuple(statistics.median(t[i] for t in ts[1:]) for i in (0, 1))

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--repeats', type=int, default=11)
    p.add_argument('--size', type=int, default=64, help='input size for the ImageNet models')
    p.add_argument('--vit-size', type=int, default=64, help='input size for ViT-B/16 (a multiple of 16)')
    p.add_argument('--seg-size', type=int, default=128, help='input size for the segmentation net')
    p.add_argument('--batches', type=int, nargs='*', default=[1, 64])
    p.add_argument('--only', nargs='*')
    p.add_argument('--fraction', type=float, default=0.5, help='fraction of the units of every prunable group removed')
    p.add_argument('--multiple-of', type=int, default=16, help='round kept units per group up to a multiple of this (1 = plain)')
    p.add_argument('--no-fold-bn', dest='fold_bn', action='store_false', help='keep BatchNorm layers (default: folded in both nets)')
    p.add_argument('--backends', nargs='*', default=['torch_channels_last', 'onnxruntime'],
                   help="runtimes timed (see fastprune.deploy.benchmark_inference); 'torch' = PyTorch eager NCHW")
    p.add_argument('--weights', default=str(WEIGHTS),
                   help="ResNet-56 checkpoint (trained weights keep its outputs O(1), so onnxruntime's export check applies; "
                        "a random-init ResNet-56 outputs values in the thousands)")
    p.add_argument('--no-surgery-time', dest='surgery_time', action='store_false', help='skip timing ResNet-50 surgery')
    p.add_argument('--default-malloc', dest='steady', action='store_false', help="keep glibc's default allocator settings")
    a = p.parse_args()
    if a.steady: print(f'allocator: {steady_allocator()}')
    torch.set_num_threads(1); torch.manual_seed(0)
    warnings.simplefilter('ignore')
    if a.surgery_time:
        cold, warm = surgery_time()
        print(f"ResNet-50 trace + prune_units(50% of every group) at 224x224: {warm[0]:.2f} s CPU, {warm[1]:.2f} s wall "
              f"(first call, incl. one-time imports: {cold[0]:.2f} s CPU, {cold[1]:.2f} s wall)")
    done = (f"{a.fraction:.0%} of the units of every prunable group removed (lowest L1)"
            + (f", kept units rounded up to a multiple of {a.multiple_of}" if a.multiple_of > 1 else ""))
    print(f"pruned: {done}; both nets: {'BN folded into the convs' if a.fold_bn else 'BN kept (not folded)'}, eval; "
          f"{torch.get_num_threads()} thread; median process CPU time of {a.repeats} interleaved runs")
    print(f"{'net':26s} {'backend':20s} {'params':>7s} {'FLOPs x':>8s} " + ' '.join(f"{'bs'+str(b)+' x':>8s} {'share':>6s}" for b in a.batches))
    shares = {}
    for name, (make, s) in _nets(a.size, a.weights, a.vit_size, a.seg_size).items():
        if a.only and name.split()[0] not in a.only: continue
        x = torch.randn(2, 3, s, s)  # batch 2: torch.export specializes a batch of 1 (ViT's ONNX file then takes only 1)
        dense, pruned = dense_and_pruned(make(), x, a.fraction, a.multiple_of, a.fold_bn, finetune=lambda m: m)
        fr = count_flops(dense, x[:1])[0] / count_flops(pruned, x[:1])[0]
        pr = sum(q.numel() for q in dense.parameters()) / sum(q.numel() for q in pruned.parameters())
        df = benchmark_inference({'dense': dense, 'pruned': pruned}, x, backends=tuple(a.backends),
                                 batch_sizes=tuple(a.batches), n_repeats=a.repeats, timer='process')
        t = df.pivot_table(index=['backend', 'batch_size'], columns='model', values='median_ms')
        for backend in a.backends:
            if backend not in t.index.get_level_values(0): continue  # skipped, with benchmark_inference's message
            cols = []
            for b in a.batches:
                speedup = t.loc[(backend, b), 'dense'] / t.loc[(backend, b), 'pruned']
                cols.append(f"{speedup:8.2f} {speedup / fr:6.0%}")
                shares[(name, backend, b)] = speedup / fr
            print(f"{name:26s} {backend:20s} {pr:6.2f}x {fr:7.2f}x " + ' '.join(cols), flush=True)
    print("x = dense / pruned (median CPU time); share = speed-up / FLOPs ratio (FLOPs of the nets timed, after rounding)")
    if 64 in a.batches:
        print(f"batch 64, target share >= {TARGET:.0%}:")
        for backend in a.backends:
            miss = [n for (n, bk, b), v in shares.items() if bk == backend and b == 64 and v < TARGET]
            n = sum(1 for (_, bk, b) in shares if bk == backend and b == 64)
            print(f"  {backend:20s} " + ("met by every net" if not miss else f"met by {n - len(miss)} of {n}; NOT met by {', '.join(miss)}"))

if __name__ == '__main__': main()
