"""Inference speed-up of filter pruning, measured side by side: dense vs 50%-filter-pruned-and-compacted, then int8.

For the demo network (`vgg_bn`, trained on the bundled digits at 32x32 for 4 epochs as `fastprune.demo` does) and the
pretrained CIFAR ResNet-56, half the units of every prunable
coupling group are removed by `prune_units` (lowest L1 norm first, `fastprune.deploy.l1_units`). By default the
number of kept units per group is rounded UP to a multiple of 16 (`--multiple-of 1` gives the plain 50%): CPU
convolution kernels (onnxruntime's NCHWc layout, oneDNN) work on blocks of 16 channels on AVX-512, so a layer of 8 or
24 channels costs as much as one of 16 or 32. The pruned nets are fine-tuned briefly (fastai `fit_one_cycle`: the
digits net 4 epochs at 3e-3, ResNet-56 2 epochs at 2e-3 on 200 CIFAR-10 training images per class), so that their
accuracy means something. BatchNorm is folded into the convolutions of BOTH the dense and the
pruned model (`fold_bn`, `--no-fold-bn` keeps it), as for deployment. The FLOPs ratio is counted on the nets timed
(torch.utils.flop_counter, convs and matmuls), after rounding. All models, backends (torch NCHW, torch channels-last,
onnxruntime, and onnxruntime on the static int8 file, `int8`) and batch sizes (1, 64) are timed in ONE interleaved loop (`benchmark_inference`), so machine noise hits
every contender alike; the default timer is the process CPU time (one thread for torch and onnxruntime), which does
not count time lost to other jobs on a shared machine (`--timer wall` for elapsed time). The process keeps the memory
it frees (`steady_allocator`, `--default-malloc` turns it off): with glibc's defaults every PyTorch forward pass at
batch 64 maps its large activations afresh and the kernel zeroes them, thousands of page faults that took 20-50 % of
PyTorch's process time here and most of its run-to-run noise, while onnxruntime reuses its own arena.
Printed: median latency of dense and pruned, the speed-up, the FLOPs ratio and the speed-up as a share of the FLOPs
ratio. Target: share >= 90 % at batch 64. Then, for the demo network in PyTorch eager (NCHW and channels-last) at
batch 64, each top-level stage's FLOPs and time, dense and pruned: a stage whose share of the time is far above its
share of the FLOPs is a cost the FLOPs ratio does not see. Last, the ceiling of the share: the speed-up the pruned net
would have if every stage with FLOPs ran exactly its FLOPs ratio faster than the dense one (stages without FLOPs as
timed); a stage that pruning leaves unchanged (the 16-channel first stack when units are rounded to 16) caps it.
Int8: `fastprune.deploy.quantize_static` on the pruned net (onnxruntime static quantization of the verified export,
QDQ, per-channel int8 weights, uint8 activations, MinMax ranges over 4 training batches of 64) gives the accuracy of
the float and the int8 file on the validation set (the digits' 360; 200 CIFAR-10 test images per class, JPEG q75, on
which the pretrained ResNet-56 scores below its 93.6 % on the original set); dense and pruned PyTorch accuracy on the
same set. The `int8` timing backend quantizes the same way but calibrates on the timing input: the ranges set the
scales, not the work, so the latency is that of the file whose accuracy is printed. Printed last: dense fp32 ->
pruned fp32 -> pruned int8, latency (fp32 rows: onnxruntime, the faster float runtime here) and accuracy. Target:
pruned int8 faster than pruned fp32 at batch 64 with at most 1 point of accuracy lost.

Run from the repository root (fastprune installed, or PYTHONPATH=.):
    OMP_NUM_THREADS=1 python bench/deploy.py [--n-repeats 15] [--multiple-of 16] [--no-fold-bn] [--timer process]
                                             [--default-malloc] [--max-per-class 200]
"""
import argparse, copy, ctypes, os, tempfile
from pathlib import Path
import pandas as pd
import torch
from torch import nn
from fastai.learner import Learner
from fastai.callback.schedule import fit_one_cycle  # noqa: F401  (patches Learner.fit_one_cycle)
from fastai.torch_core import set_seed
from fastprune.data import digits_dls, folder_dls, shared_data
from fastprune.models import vgg_bn, resnet56
from fastprune.surgery.edit import prune_units
from fastprune.deploy import benchmark_inference, fold_bn, quantize_static, accuracy_change, l1_units
from fastprune.report import count_flops

WEIGHTS = Path(__file__).resolve().parents[1].parent/'shared/data/weights/resnet56-4bfd9763.th'
TARGET = 0.9

def steady_allocator() -> str:
    "Make glibc keep freed memory (no trimming, no per-tensor mmap), as jemalloc/tcmalloc do; says what it did."
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, limit = -1, -3, 1 << 30
    try: libc = ctypes.CDLL('libc.so.6')
    except OSError: return 'default (no glibc found)'
    ok = libc.mallopt(M_TRIM_THRESHOLD, limit) and libc.mallopt(M_MMAP_THRESHOLD, limit)
    return 'glibc keeps freed memory (mallopt trim and mmap thresholds 1 GiB)' if ok else 'default (mallopt refused)'

def fit(model, dls, epochs, lr):
    "`model` trained with fastai's `fit_one_cycle`, quietly, by a new `Learner` (an optimizer of its own parameters)"
    learn = Learner(dls, model, loss_func=nn.CrossEntropyLoss())
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(epochs, lr)
    return model.eval()

def dense_and_pruned(model, x, fraction, multiple_of, fold, finetune):
    model.eval()
    pruned = finetune(prune_units(copy.deepcopy(model), l1_units(model, x, fraction, multiple_of), x))
    return (fold_bn(model), fold_bn(pruned)) if fold else (model, pruned.eval())

class _OnInput(torch.nn.Module):
    "`stage` run on its own fixed input `x` (a buffer, so channels-last converts it too), whatever it is called with."
    def __init__(self, stage, x): super().__init__(); self.stage = stage; self.register_buffer('x', x)
    def forward(self, _): return self.stage(self.x)

def stage_times(dense, pruned, x, repeats, backends=('torch', 'torch_channels_last')):
    "Per top-level stage of two `nn.Sequential` nets, per PyTorch backend: FLOPs and median process time at `x`."
    stages, rows, xd, xp = {}, [], x, x
    with torch.inference_mode():
        for (name, d), (_, p) in zip(dense.named_children(), pruned.named_children()):
            stages[f'{name} dense'], stages[f'{name} pruned'] = _OnInput(d, xd), _OnInput(p, xp)
            rows.append(dict(stage=name, dense_mflops=count_flops(d, xd[:1])[0] / 1e6, pruned_mflops=count_flops(p, xp[:1])[0] / 1e6))
            xd, xp = d(xd), p(xp)
    ms = benchmark_inference(stages, x, backends=backends, batch_sizes=(len(x),), n_repeats=repeats,
                             timer='process').set_index(['backend', 'model']).median_ms  # all stages and backends, interleaved
    tables = {}
    for b in backends:
        df = pd.DataFrame(rows)
        for k in ('dense', 'pruned'):
            df[f'{k}_ms'] = [ms[b, f'{s} {k}'] for s in df.stage]
            df[f'{k}_flops_share'] = df[f'{k}_mflops'] / df[f'{k}_mflops'].sum()
            df[f'{k}_time_share'] = df[f'{k}_ms'] / df[f'{k}_ms'].sum()
        df['speedup'] = df.dense_ms / df.pruned_ms
        tables[b] = df
    return tables

INT8_STEPS = {'dense fp32': ('dense', 'onnxruntime'), 'pruned fp32': ('pruned', 'onnxruntime'), 'pruned int8': ('pruned', 'int8')}

def int8_table(df, accuracy):
    "dense fp32 -> pruned fp32 -> pruned int8 per net: accuracy, latency per batch size and speed-up over dense fp32"
    ms, rows = df.set_index(['net', 'kind', 'backend', 'batch_size']).median_ms, []
    for net in accuracy:
        for step, (kind, backend) in INT8_STEPS.items():
            r = dict(net=net, model=step, accuracy_pct=100 * accuracy[net][step])
            for bs in sorted(df.batch_size.unique()):
                r[f'bs{bs}_ms'] = ms[net, kind, backend, bs]
                r[f'bs{bs}_speedup'] = ms[net, 'dense', 'onnxruntime', bs] / r[f'bs{bs}_ms']
            rows.append(r)
    return pd.DataFrame(rows)

def ideal_speedup(st) -> float:
    "Speed-up of the pruned net if each stage with FLOPs took dense time / its FLOPs ratio, stages without FLOPs as timed."
    with_flops = st.pruned_mflops > 0
    ideal_ms = (st.dense_ms * st.pruned_mflops / st.dense_mflops).where(with_flops, st.pruned_ms)
    return st.dense_ms.sum() / ideal_ms.sum()

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--n-repeats', type=int, default=15, help='interleaved timing rounds')
    p.add_argument('--fraction', type=float, default=0.5, help='fraction of units removed from every prunable group')
    p.add_argument('--multiple-of', type=int, default=16,
                   help='round kept units per group up to a multiple of this (16 = NCHWc/oneDNN block on AVX-512; 1 = plain)')
    p.add_argument('--no-fold-bn', dest='fold_bn', action='store_false', help='keep BatchNorm (default: folded in both)')
    p.add_argument('--backends', nargs='*', default=['torch', 'torch_channels_last', 'onnxruntime', 'int8'])
    p.add_argument('--timer', default='process', choices=('process', 'wall'))
    p.add_argument('--weights', default=str(WEIGHTS), help='ResNet-56 checkpoint')
    p.add_argument('--max-per-class', type=int, default=200, help='CIFAR-10 train and test images per class (ResNet-56)')
    p.add_argument('--default-malloc', dest='steady', action='store_false', help="keep glibc's default allocator settings")
    args = p.parse_args()
    if args.steady: print(f'allocator: {steady_allocator()}')
    torch.set_num_threads(1); set_seed(0, reproducible=True)
    x = torch.randn(1, 3, 32, 32)
    data = {'vgg_bn': digits_dls(size=32, bs=64, seed=0),
            'resnet56': folder_dls(shared_data('cifar10'), bs=64, max_per_class=args.max_per_class, seed=0)}
    nets = {'vgg_bn': fit(vgg_bn(), data['vgg_bn'], 4, 3e-3), 'resnet56': resnet56(args.weights)}
    finetune = {'vgg_bn': (4, 3e-3), 'resnet56': (2, 2e-3)}
    models, flops_ratio, accuracy = {}, {}, {}
    for name, net in nets.items():
        dense, pruned = dense_and_pruned(net, x, args.fraction, args.multiple_of, args.fold_bn,
                                         lambda m: fit(m, data[name], *finetune[name]))
        models[f'{name} dense'], models[f'{name} pruned'] = dense, pruned
        with tempfile.TemporaryDirectory() as d:
            int8 = quantize_static(pruned, data[name], Path(d)/f'{name}.onnx', n_batches=4)
        torch_acc = accuracy_change(dense, pruned, data[name])
        accuracy[name] = {'dense fp32': torch_acc['before'], 'pruned fp32': int8.accuracy['before'],
                          'pruned int8': int8.accuracy['after']}
        print(f'{name} accuracy on {len(data[name].valid_ds)} validation images: dense {torch_acc["before"]:.2%}, pruned '
              f'{torch_acc["after"]:.2%} (PyTorch); pruned float ONNX {int8.accuracy["before"]:.2%}, int8 ONNX '
              f'{int8.accuracy["after"]:.2%} ({100 * int8.accuracy["change"]:+.2f} points)')
        fd, fp = count_flops(dense, x)[0], count_flops(pruned, x)[0]
        flops_ratio[name] = fd / fp
        n = lambda m: sum(p.numel() for p in m.parameters())
        print(f'{name}: params {n(dense):,} -> {n(pruned):,}; FLOPs {fd/1e6:.1f}M -> {fp/1e6:.1f}M ({fd/fp:.2f}x fewer)')
    print(f'threads: torch {torch.get_num_threads()}, onnxruntime the same; OMP_NUM_THREADS={os.environ.get("OMP_NUM_THREADS")}')
    df = benchmark_inference(models, x, backends=tuple(args.backends), batch_sizes=(1, 64), n_repeats=args.n_repeats,
                             timer=args.timer)
    df['net'], df['kind'] = zip(*df.model.str.split(' '))
    t = df.pivot_table(index=['net', 'backend', 'batch_size'], columns='kind', values='median_ms').reset_index()
    t['speedup'] = t['dense'] / t['pruned']
    t['flops_ratio'] = t.net.map(flops_ratio)
    t['share'] = t.speedup / t.flops_ratio
    rounded = f', kept units rounded up to a multiple of {args.multiple_of}' if args.multiple_of > 1 else ''
    print(f'\nmedian {args.timer} time (ms) over {args.n_repeats} interleaved rounds; pruned = {args.fraction:.0%} of the '
          f'units of every prunable group removed (lowest L1){rounded}, then compacted; '
          f'{"BN folded in both" if args.fold_bn else "BN kept in both"}; torch = NCHW, torch_channels_last = same model in '
          f'channels-last memory format; share = speed-up / FLOPs ratio')
    print(t.to_string(index=False, float_format=lambda v: f'{v:.3f}'))
    at64 = t[t.batch_size == 64]
    print(f'\nbatch 64, share of the FLOPs ratio (target >= {TARGET:.0%}):')
    for r in at64.itertuples():
        print(f'  {r.net:9s} {r.backend:20s} speed-up {r.speedup:.2f}x / FLOPs {r.flops_ratio:.2f}x = {r.share:.0%}'
              f'  {"met" if r.share >= TARGET else "NOT met"}')
    xb = torch.randn(64, *x.shape[1:])
    for backend, st in stage_times(models['vgg_bn dense'], models['vgg_bn pruned'], xb, args.n_repeats).items():
        print(f'\nvgg_bn stage by stage in PyTorch eager ({backend}), batch 64, median process time of {args.n_repeats} '
              f'interleaved runs: where the dense and the pruned net spend their FLOPs and their time')
        print(st.to_string(index=False, float_format=lambda v: f'{v:.3f}'))
        print(f'ceiling: if every stage with FLOPs ran exactly its FLOPs ratio faster (the others as measured), the '
              f'pruned net would be {ideal_speedup(st):.2f}x faster = {ideal_speedup(st) / flops_ratio["vgg_bn"]:.0%} '
              f'of the FLOPs ratio; the stages pruning cannot shrink set this ceiling')
    if not {'onnxruntime', 'int8'} <= set(df.backend): return
    it = int8_table(df, accuracy)
    print(f'\nint8: dense fp32 -> pruned fp32 -> pruned int8, median {args.timer} time (ms) of the same interleaved loop '
          f'(fp32 = onnxruntime on the float export, int8 = onnxruntime on the static int8 file); speed-up over dense fp32; '
          f'accuracy on the validation set')
    print(it.to_string(index=False, float_format=lambda v: f'{v:.3f}'))
    print('\nbatch 64, pruned int8 vs pruned fp32 (target: faster, with at most 1 point of accuracy lost):')
    for net, t in it.groupby('net', sort=False):
        f32, i8 = t.set_index('model').loc['pruned fp32'], t.set_index('model').loc['pruned int8']
        change = i8.accuracy_pct - f32.accuracy_pct
        print(f'  {net:9s} {f32.bs64_ms / i8.bs64_ms:.2f}x faster, accuracy {change:+.2f} points  '
              f'{"met" if i8.bs64_ms < f32.bs64_ms and change >= -1 else "NOT met"}')

if __name__ == '__main__': main()
