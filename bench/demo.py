"""The demo's result over seeds: `fastprune.demo.run_demo` on the bundled digits (vgg_bn, 4 dense epochs, then the
FLOPs budget with distillation for 4 epochs), for `--seeds` seeds in each of `--contexts` ('global', and 'local',
the default); prints per seed and as mean ± sd the dense and pruned validation accuracy, the drop
in points and the FLOPs ratio (dense / pruned).
Usage: python bench/demo.py [--seeds 3] [--contexts global local] [--out bench/results/demo.txt]
"""
import argparse, contextlib, datetime, io, shlex, statistics, sys
from pathlib import Path
import torch
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from fastprune.demo import run_demo

def main(seeds=3, contexts=('global', 'local'), out=None):
    lines = [f"# python bench/demo.py {' '.join(shlex.quote(a) for a in sys.argv[1:])}   (run "
             f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, torch {torch.__version__})"]
    ms = lambda xs: f"{statistics.mean(xs):.2f} ± {statistics.stdev(xs) if len(xs) > 1 else 0:.2f}"
    for context in contexts:
        rows = []
        for seed in range(seeds):
            with contextlib.redirect_stdout(io.StringIO()): before, after = run_demo(seed=seed, context=context)
            rows.append((100 * before.accuracy, 100 * after.accuracy, before.flops / after.flops))
            lines.append(f"{context}, seed {seed}: dense {rows[-1][0]:.2f} %, pruned {rows[-1][1]:.2f} %, drop "
                         f"{rows[-1][0] - rows[-1][1]:.2f} points, FLOPs {rows[-1][2]:.2f}x fewer")
        lines.append(f"{context}, mean ± sd over {seeds} seeds: dense {ms([r[0] for r in rows])} %, pruned "
                     f"{ms([r[1] for r in rows])} %, drop {ms([r[0] - r[1] for r in rows])} points, FLOPs "
                     f"{ms([r[2] for r in rows])}x fewer")
    print('\n'.join(lines))
    if out: Path(out).write_text('\n'.join(lines) + '\n')

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--seeds', type=int, default=3); p.add_argument('--out')
    p.add_argument('--contexts', nargs='+', default=['global', 'local'], choices=['global', 'local'])
    main(**vars(p.parse_args()))
