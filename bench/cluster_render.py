"""Rendering filter signatures: all filters of a layer in one batched optimisation vs one filter at a time.

Same network, same layer, same image size, same number of Adam steps and the same transforms for every way;
repeats are interleaved (batched, chunked, single, batched...) so all see the same machine load. Prints the
time of each way and the ratios, for a 64-filter and a 256-filter layer. Target: batched ≥ 10× faster.
Besides all filters in one batch (`bs=None`, the default) and one at a time (`bs=1`), it times batches of
`--chunk` filters: on a CPU a batch that fits the caches can beat one huge batch. Each cell is the fastest repeat in
seconds and, in brackets, milliseconds per filter and Adam step: what batching can save is the per-step overhead of
one small optimisation; the compute per image (its forward and backward pass through the layers before this one)
stays, so the speed-up is bounded by (overhead + compute) / compute per image.
Usage (from the repo root): PYTHONPATH=. python bench/cluster_render.py [--steps 16] [--size 32] [--repeats 3]
"""
import os, time
os.environ.setdefault('OMP_NUM_THREADS', '1')
import torch
from fastcore.script import call_parse
from fastprune.models import vgg_bn
from fastprune.cluster import filter_signatures

def _time(f):
    t = time.perf_counter(); f(); return time.perf_counter() - t

@call_parse
def main(steps:int=16, # Adam steps per rendering (same for every way)
         size:int=32, # image side (same for every way)
         repeats:int=3, # interleaved repeats; the fastest of each way is reported
         chunk:int=32, # also time batches of this many filters (bs=chunk): on a CPU, cache-sized batches can win
        ):
    "Time batched vs one-at-a-time rendering of a 64- and a 256-filter layer of a VGG-style net"
    torch.manual_seed(0)
    model = vgg_bn(widths=((64,), (256,)))
    ways = {'all in one batch': None, f'batches of {chunk}': chunk, 'one at a time': 1}
    print(f"torch threads: {torch.get_num_threads()}, steps={steps}, size={size}, repeats={repeats}; "
          "seconds (ms per filter and step), fastest repeat")
    print(f"{'layer':<15}{'filters':>8}" + ''.join(f'{w:>22}' for w in ways) + f"{'speed-up':>10}{'chunked':>9}")
    for layer in ('stack0.0.conv', 'stack1.0.conv'):
        n = model.get_submodule(layer).out_channels
        for bs in ways.values(): filter_signatures(model, layer, bs=bs, size=size, steps=1, progress=False)  # warm-up
        times = {bs: [] for bs in ways.values()}
        for _ in range(repeats):
            for bs in times: times[bs].append(_time(lambda: filter_signatures(model, layer, bs=bs, size=size, steps=steps, progress=False)))
        t = {bs: min(v) for bs, v in times.items()}
        print(f"{layer:<15}{n:>8}" + ''.join(f'{t[bs]:>12.2f} ({t[bs] / n / steps * 1e3:5.2f} ms)' for bs in ways.values()) +
              f"{t[1] / t[None]:>9.1f}×{t[1] / t[chunk]:>8.1f}×")
    print("speed-up = one at a time / all in one batch; chunked = one at a time / batches of", chunk)
