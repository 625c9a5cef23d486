"The layers import as DESIGN.md says: surgery needs no fastai; `fastprune.all` gives the whole public API."
import subprocess, sys

def _modules_after(stmt):
    code = f"import sys; {stmt}; print(' '.join(sorted(m.split('.')[0] for m in sys.modules)))"
    return subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True).stdout.split()

def test_surgery_works_without_fastai():
    assert 'fastai' not in _modules_after('from fastprune.surgery import prune_units, grow_units, compact, trace')

def test_all_exports_the_public_api():
    ns = {}
    exec('from fastprune.all import *', ns)
    for name in ['FitHooks', 'MaskedTraining', 'SparsifyCallback', 'LotteryRewindCallback', 'DASGrowPruneCallback', 'ClusterPruneCallback', 'Sparsifier',
                 'KnowledgeDistillationCallback', 'prune_units', 'grow_units', 'compact', 'compression_report', 'large_final', 'one_cycle', 'digits_dls']:
        assert name in ns, name
