"""Rendering filter signatures: the default (chunk size chosen while rendering) vs one filter at a time vs all filters of
the layer in one batch, for layers of 16, 64 and 256 filters. Target: the default is never slower than one at a time.

Same network, same layer, same image size, same number of Adam steps and the same transforms for every way; repeats are
interleaved (default, one at a time, one batch, default...) so all see the same machine load, and each cell is the
fastest repeat in seconds and, in brackets, milliseconds per filter and Adam step. The layers are the three convs of a
VGG-style net with widths 16, 64, 256: the first is cheap per image (a 3-channel conv), the others run every image
through the layers before them, so one big batch pays its per-step overhead once but its activations outgrow the caches.
What batching can save is the per-step overhead of one small optimisation; each image's own compute stays.
Usage (from the repo root): PYTHONPATH=. python bench/cluster_render.py [--steps 8] [--size 32] [--repeats 2]
"""
import os, sys, time, datetime
os.environ.setdefault('OMP_NUM_THREADS', '1')
import torch
from fastcore.script import call_parse
from fastprune.models import vgg_bn
from fastprune.cluster import filter_signatures

def _time(f):
    t = time.perf_counter(); f(); return time.perf_counter() - t

@call_parse
def main(steps:int=8, # Adam steps per rendering (same for every way)
         size:int=32, # image side (same for every way)
         repeats:int=2, # interleaved repeats; the fastest of each way is reported
        ):
    "Time the default chunking vs one at a time vs one batch on 16-, 64- and 256-filter layers of a VGG-style net"
    print(f"# PYTHONPATH=. python {' '.join(sys.argv)}   ({datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC)")
    torch.manual_seed(0)
    model = vgg_bn(widths=((16,), (64,), (256,)))
    print(f"torch threads: {torch.get_num_threads()}, steps={steps}, size={size}, repeats={repeats}; "
          "seconds (ms per filter and step), fastest repeat")
    ways = {'default (auto)': None, 'one at a time': 1, 'one batch': 'n'}
    print(f"{'layer':<15}{'filters':>8}" + ''.join(f'{w:>22}' for w in ways) + f"{'auto vs 1':>11}{'batch vs 1':>11}")
    for layer in ('stack0.0.conv', 'stack1.0.conv', 'stack2.0.conv'):
        n = model.get_submodule(layer).out_channels
        bss = {w: n if bs == 'n' else bs for w, bs in ways.items()}
        render = lambda bs, k: filter_signatures(model, layer, bs=bs, size=size, steps=k, progress=False)
        for bs in bss.values(): render(bs, 1)  # warm-up
        times = {w: [] for w in ways}
        for _ in range(repeats):
            for w, bs in bss.items(): times[w].append(_time(lambda: render(bs, steps)))
        t = {w: min(v) for w, v in times.items()}
        print(f"{layer:<15}{n:>8}" + ''.join(f'{t[w]:>12.2f} ({t[w] / n / steps * 1e3:5.2f} ms)' for w in ways) +
              f"{t['one at a time'] / t['default (auto)']:>10.2f}×{t['one at a time'] / t['one batch']:>10.2f}×", flush=True)
    print("auto vs 1 = one at a time / default (> 1: the default is faster); batch vs 1 = one at a time / one batch")
