"""fastprune's surgery engine and Torch-Pruning on the same task, side by side in one run.

The task, for each network: remove 50% of the output channels of every prunable layer (the classifier's outputs
stay), lowest L1 norm first, from a network that is being trained with Adam (one step has been taken, so the
optimizer holds momentum), and continue training. Both libraries get the same model copy and the same example
input; Torch-Pruning uses `MagnitudePruner` with `GroupMagnitudeImportance(p=1)` and `pruning_ratio=0.5`,
fastprune selects the same share per coupled group by L1 (`fastprune.deploy.l1_units`) and calls `prune_units`
with the optimizer. Printed per network and library:
- params and FLOPs ratios (dense / pruned; FLOPs from `torch.utils.flop_counter`, convs and matmuls);
- speed-up: median CPU time of a batch-64 forward, dense / pruned, interleaved repeats (dense, fastprune,
  Torch-Pruning, dense...), one thread; BatchNorm is left unfolded in all three;
- time to prune (tracing plus surgery);
- a pruned model that no longer runs is reported as broken, with its error;
- optimizer: the share of the pruned model's parameters that the optimizer still updates after pruning, and
  whether a training step then runs. A parameter the optimizer no longer holds silently stops training.
`--coverage` also runs both libraries on torchvision models (random weights; 30% of channels by L1) and counts
the models each one prunes into a network that still runs with the same output shape. Each attempt runs in a forked
process limited to 6 GB of extra memory and 300 s, and a model that exceeds either counts as not pruned.

Torch-Pruning is never a dependency of fastprune: the benchmark imports it from `--tp-path` (installed there with
`pip install --target /work/tp_pkg --no-deps torch-pruning`) and prints only fastprune's side without it.
Usage: OMP_NUM_THREADS=1 python bench/peers.py [--repeats 7] [--coverage resnet18 mobilenet_v2 ...|all]
"""
import argparse, copy, statistics, sys, time, warnings
from pathlib import Path
import torch
from torch import nn
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from fastprune.surgery import prune_units
from fastprune.deploy import l1_units
from fastprune.models import vgg_bn, resnet56
from fastprune.report import count_flops

def n_params(m): return sum(p.numel() for p in m.parameters())

COVERAGE = '''resnet18 mobilenet_v2 mobilenet_v3_small efficientnet_b0 densenet121 googlenet inception_v3 shufflenet_v2_x0_5
squeezenet1_0 regnet_x_400mf mnasnet0_5 convnext_tiny vit_b_16 swin_t maxvit_t'''.split()

def nets():
    import torchvision
    return {'vgg16_bn (CIFAR)': (lambda: vgg_bn(widths=((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512)), fc=512), 32),
            'resnet56 (CIFAR)': (resnet56, 32),
            'resnet18': (lambda: torchvision.models.resnet18(), 64),
            'mobilenet_v2': (lambda: torchvision.models.mobilenet_v2(), 64)}

def import_tp(path):
    sys.path.insert(0, path)
    try:
        import torch_pruning as tp
        return tp
    except ImportError as e: print(f"Torch-Pruning not available from {path}: {e}"); return None

def _classifier(model):
    "The output layer (the last conv or linear), which Torch-Pruning must be told to leave whole."
    return [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))][-1:]

def trained_step(model, x):
    "An Adam optimizer that has taken one step on `model` (so it holds state), as in the middle of training."
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    model.train(); model(x.repeat(4, 1, 1, 1)).sum().backward(); opt.step(); opt.zero_grad()
    return opt

def prune_fastprune(model, x, ratio):
    opt = trained_step(model, x)
    t = time.perf_counter()
    prune_units(model, l1_units(model.eval(), x, ratio), x, opt=opt)
    return opt, time.perf_counter() - t

def prune_tp(tp, model, x, ratio):
    opt = trained_step(model, x)
    t = time.perf_counter()
    tp.pruner.MagnitudePruner(model.eval(), x, importance=tp.importance.GroupMagnitudeImportance(p=1),
                              pruning_ratio=ratio, ignored_layers=_classifier(model)).step()
    return opt, time.perf_counter() - t

def optimizer_check(model, opt, x):
    "(share of the model's parameters the optimizer holds, whether a training step runs)."
    held = {id(p) for g in opt.param_groups for p in g['params']}
    share = sum(id(p) in held for p in model.parameters()) / len(list(model.parameters()))
    try:
        model.train(); model(x.repeat(4, 1, 1, 1)).sum().backward(); opt.step(); opt.zero_grad(); ok = 'runs'
    except Exception as e: ok = f'fails ({type(e).__name__})'
    return share, ok

def cpu_time(model, x):
    with torch.inference_mode():
        t = time.process_time(); model(x); return time.process_time() - t

def speedups(dense, pruned, x, repeats):
    "dense median / pruned median for each pruned model, over interleaved repeats."
    for m in (dense, *pruned): m.eval(); cpu_time(m, x)  # warm-up
    times = [[] for _ in range(len(pruned) + 1)]
    for _ in range(repeats):
        for ts, m in zip(times, (dense, *pruned)): ts.append(cpu_time(m, x))
    d = statistics.median(times[0])
    return [d / statistics.median(ts) for ts in times[1:]]

def compare(tp, repeats):
    print(f"{'network':<18}{'library':<15}{'params':>8}{'FLOPs':>8}{'speed-up':>10}{'share':>7}{'prune s':>9}"
          f"{'opt holds':>10}  training step")
    for name, (factory, size) in nets().items():
        torch.manual_seed(0)
        dense, x = factory().eval(), torch.randn(1, 3, size, size)
        libs = {'fastprune': lambda m: prune_fastprune(m, x, 0.5)}
        if tp: libs['Torch-Pruning'] = lambda m: prune_tp(tp, m, x, 0.5)
        pruned, rows = [], []
        for lib, prune in libs.items():
            model = copy.deepcopy(dense)
            try:
                opt, secs = prune(model)
                with torch.no_grad(): model.eval()(x)
            except Exception as e:
                print(f"{name:<18}{lib:<15}  pruned model broken: {type(e).__name__}: {str(e).splitlines()[0][:70]}"); continue
            share, step = optimizer_check(model, opt, x)
            pruned.append(model.eval()); rows.append((lib, secs, share, step))
        fd, pd = count_flops(dense, x)[0], n_params(dense)
        for (lib, secs, share, step), model, s in zip(rows, pruned, speedups(dense, pruned, x.repeat(64, 1, 1, 1), repeats)):
            fr = fd / count_flops(model, x)[0]
            print(f"{name:<18}{lib:<15}{pd / n_params(model):>7.2f}×{fr:>7.2f}×{s:>9.2f}×{s / fr:>7.0%}{secs:>9.2f}"
                  f"{share:>10.0%}  {step}", flush=True)

def _try_prune(prune, dense, x, shape):
    "'ok' if pruning a copy of `dense` leaves a smaller model with the same output shape, else what went wrong."
    try:
        model = copy.deepcopy(dense)
        with warnings.catch_warnings():
            warnings.simplefilter('ignore'); prune(model, x)
        with torch.no_grad(): out = model(x).shape
    except Exception as e: return f'{type(e).__name__}: {str(e).splitlines()[0][:30]}' if str(e) else type(e).__name__
    return 'ok' if out == shape and n_params(model) < n_params(dense) else f'output {tuple(out)}' if out != shape else 'nothing pruned'

def guarded(fn, seconds, gb):
    "`fn()` in a forked child limited to `gb` GB more address space and `seconds` of wall time (a str result)."
    import multiprocessing, resource
    def child(conn):
        vm = int(open('/proc/self/statm').read().split()[0]) * resource.getpagesize()
        resource.setrlimit(resource.RLIMIT_AS, (vm + int(gb * 2**30), resource.RLIM_INFINITY))
        conn.send(fn())
    recv, send = multiprocessing.Pipe(False)
    proc = multiprocessing.get_context('fork').Process(target=child, args=(send,)); proc.start()
    res = recv.recv() if recv.poll(seconds) else f'over {seconds} s'
    proc.kill(); proc.join()
    return res

def coverage(tp, names, budget_s=300, budget_gb=6):
    import torchvision
    if names == ['all']: names = torchvision.models.list_models(module=torchvision.models)
    libs = {'fastprune': lambda m, x: prune_units(m, l1_units(m, x, 0.3), x)}
    if tp: libs['Torch-Pruning'] = lambda m, x: tp.pruner.MagnitudePruner(
        m, x, importance=tp.importance.GroupMagnitudeImportance(p=1), pruning_ratio=0.3, ignored_layers=_classifier(m)).step()
    ok = {lib: 0 for lib in libs}
    print(f"\n{'model':<22}" + ''.join(f'{lib:>40}' for lib in libs))
    for name in names:
        kw = {'image_size': 224} if name.startswith('vit_') else {}
        if name in ('googlenet', 'inception_v3'): kw.update(aux_logits=False, init_weights=False)
        torch.manual_seed(0)
        dense = torchvision.models.get_model(name, weights=None, **kw).eval()
        x = torch.randn(1, 3, 299 if name == 'inception_v3' else 224, 299 if name == 'inception_v3' else 224)
        with torch.no_grad(): shape = dense(x).shape
        line = f"{name:<22}"
        for lib, prune in libs.items():
            res = guarded(lambda: _try_prune(prune, dense, x, shape), budget_s, budget_gb)
            ok[lib] += res == 'ok'; line += f'{res[:38]:>40}'
        print(line, flush=True)
    print('coverage: ' + ', '.join(f'{lib} {n}/{len(names)}' for lib, n in ok.items()))

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--repeats', type=int, default=7, help='interleaved timing repeats')
    p.add_argument('--tp-path', default='/work/tp_pkg')
    p.add_argument('--coverage', nargs='*', default=None, help=f'torchvision models, or all (a short list: {" ".join(COVERAGE)})')
    a = p.parse_args()
    torch.set_num_threads(1)
    tp = import_tp(a.tp_path)
    compare(tp, a.repeats)
    if a.coverage is not None: coverage(tp, a.coverage or COVERAGE)
