"""The layers import as the architecture page of the docs says (nbs/architecture.ipynb, "The layers"): each module from its
own layer and the layers below (`LAYERS`), no import cycle, no other module's private names; surgery needs no fastai;
`fastprune.all` gives the whole public API."""
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

# ---- Private names stay in their module (nbs/architecture.ipynb) -------------------------------------------------------
# A fastprune module uses another fastprune module's public names only: it neither imports a `_name` from one nor reads
# or calls a `_name` that only another module defines (`sparsifier._sync()`, `graph._by_producer`). Torch's and fastai's
# own private names are outside this rule, but each one the package touches is listed below with the reason, so that a
# new reach into a library's internals is a decision someone wrote down rather than an accident.
import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1]/'fastprune'

# {private name: why fastprune may use it}; names from torch, timm and the standard library, never fastprune's own
LIBRARY_INTERNALS = {
    '_ConvNd': "torch's base class of Conv1d/2d/3d and their transposes: the one way to recognise every conv layer",
    '_BatchNorm': "torch's base class of BatchNorm1d/2d/3d (and SyncBatchNorm): recognising every BatchNorm layer",
    '_NormBase': "torch's base class of the BatchNorm and InstanceNorm layers: recognising every per-channel norm",
    '_InstanceNorm': "torch's base class of InstanceNorm1d/2d/3d: recognising every instance norm",
    '_AdaptiveAvgPoolNd': "torch's base class of the adaptive average pools: one surgery rule for all of them",
    '_AdaptiveMaxPoolNd': "torch's base class of the adaptive max pools: one surgery rule for all of them",
    '_AvgPoolNd': "torch's base class of the average pools: one surgery rule for all of them",
    '_MaxPoolNd': "torch's base class of the max pools: one surgery rule for all of them",
    '_LPPoolNd': "torch's base class of the power-average pools: one surgery rule for all of them",
    '_buffers': "nn.Module's buffer dict: masks are buffers the sparsifier adds and removes, and surgery replaces them in place",
    '_parameters': "nn.Module's parameter dict: surgery swaps a resized parameter in place, keeping the module object",
    '_state_dict_hooks': "nn.Module's state_dict hooks: fastprune.state finds (and removes) the hook it registered on a module",
    '_load_state_dict_pre_hooks': "nn.Module's load pre-hooks: fastprune.state removes its hook with the last state a module carries",
    '_forward_pre_hooks': "nn.Module's forward pre-hooks: the tracer detects pruning/weight-norm reparametrizations by them",
    '_version': "a tensor's in-place version counter: the sparsifier reuses a cached mask until the mask tensor changes",
    '_replace': "the public API of typing.NamedTuple (underscored only to avoid clashing with field names)",
    '_reversed_padding_repeated_twice': "nn.Conv2d's padding as F.pad wants it: rendering a filter reuses the layer's own padding",
    '_fx': "timm's torch.fx module (timm.layers._fx): where timm registers the functions its models need traced as leaves",
    '_autowrap_functions': "timm's registry in that module of those functions: the tracer keeps them as leaf calls, as timm does",
}

def _module_of(path): return '.'.join(path.relative_to(PKG.parent).with_suffix('').parts)

def _sources():
    return {_module_of(p): ast.parse(p.read_text(), str(p)) for p in sorted(PKG.rglob('*.py')) if p.name != '_modidx.py'}

def _private(name): return name.startswith('_') and not name.startswith('__')

def _defined(tree):
    "Private names a module defines: functions, classes, module and class attributes, and `self._x = ...` attributes."
    names = set()
    for n in ast.walk(tree):
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)): names.add(n.name)
        targets = n.targets if isinstance(n, ast.Assign) else [n.target] if isinstance(n, (ast.AnnAssign, ast.AugAssign)) else []
        for t in targets:
            for e in ast.walk(t):
                if isinstance(e, ast.Name): names.add(e.id)
                if isinstance(e, ast.Attribute): names.add(e.attr)
    return {n for n in names if _private(n)}

def _imported_from(mod, node):
    "The absolute module an `ImportFrom` in module `mod` reads from."
    if not node.level: return node.module or ''
    base = mod.split('.')[:-node.level]  # a package's `__init__` counts as a module inside it, as Python resolves it
    return '.'.join(base + ([node.module] if node.module else []))

def _on_self(node):
    "`self._x`, `cls._x`, `super()._x`: a class's own (or its bases') protected members"
    v = node.value
    return (isinstance(v, ast.Name) and v.id in ('self', 'cls')) or (
        isinstance(v, ast.Call) and isinstance(v.func, ast.Name) and v.func.id == 'super')

def private_uses():
    "(violations, library names used): cross-module private imports and attribute uses, as 'module:line: what' lines"
    trees = _sources()
    owners = {}
    for mod, tree in trees.items():
        for n in _defined(tree): owners.setdefault(n, set()).add(mod)
    bad, library = [], set()
    for mod, tree in trees.items():
        own = _defined(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                src = _imported_from(mod, node)
                for a in node.names:
                    if not _private(a.name): continue
                    if src.split('.')[0] == 'fastprune': bad.append(f'{mod}:{node.lineno}: imports {a.name} from {src}')
                    else: library.add(a.name)
            elif isinstance(node, ast.Attribute) and _private(node.attr) and not _on_self(node):
                if node.attr in owners and node.attr not in own:
                    bad.append(f'{mod}:{node.lineno}: uses .{node.attr}, private to {sorted(owners[node.attr])}')
                elif node.attr not in owners: library.add(node.attr)
    return bad, library

def test_no_module_uses_another_modules_private_names():
    bad, _ = private_uses()
    assert not bad, "private names used across fastprune modules (make the name public, or move the code):\n" + '\n'.join(bad)

def test_every_library_internal_used_is_listed_with_a_reason():
    _, library = private_uses()
    unlisted = sorted(library - set(LIBRARY_INTERNALS))
    assert not unlisted, f"torch/fastai private names used but not listed in LIBRARY_INTERNALS with a reason: {unlisted}"
    stale = sorted(set(LIBRARY_INTERNALS) - library)
    assert not stale, f"LIBRARY_INTERNALS lists names no module uses any more: {stale}"

def test_the_private_name_check_catches_what_it_should(tmp_path, monkeypatch):
    "The checker itself: a private import and a private method call across modules are both reported"
    pkg = tmp_path/'fastprune'; (pkg/'sub').mkdir(parents=True)
    (pkg/'a.py').write_text("def _helper(): pass\nclass Thing:\n    def _sync(self): pass\n    def run(self): self._sync()\n")
    (pkg/'sub'/'b.py').write_text("from ..a import _helper, Thing\nfrom torch.nn.modules.conv import _ConvNd\n"
                                  "def f(t): t._sync(); return t._buffers\n")
    monkeypatch.setitem(globals(), 'PKG', pkg)
    bad, library = private_uses()
    assert bad == ['fastprune.sub.b:1: imports _helper from fastprune.a', "fastprune.sub.b:3: uses ._sync, private to ['fastprune.a']"], bad
    assert library == {'_ConvNd', '_buffers'}

# ---- Layers (nbs/architecture.ipynb, "The layers") -------------------------------------------------------------------
# Bottom up. A module imports from its own layer and the layers below it, never from a layer above (lazy imports inside
# functions count too). An entry names a module, or a package standing for all of its modules; the most specific entry
# decides. The architecture page draws and lists the same layers: `test_the_architecture_page_states_these_layers`.
LAYERS = [
    ('foundation', ['fastprune', 'fastprune.utils', 'fastprune.state', 'fastprune.data', 'fastprune.models', 'fastprune.yolo']),
    ('measuring', ['fastprune.measure', 'fastprune.onnx_export', 'fastprune.latency', 'fastprune.report']),
    ('surgery', ['fastprune.surgery']),
    ('core', ['fastprune.core']),
    ('masks', ['fastprune.blocks', 'fastprune.ranking', 'fastprune.sparsifier', 'fastprune.budget', 'fastprune.cluster']),
    ('callbacks', ['fastprune.callbacks']),
    ('applications', ['fastprune.studies', 'fastprune.deploy', 'fastprune.demo']),
    ('api', ['fastprune.all']),
]

def layer_of(mod):
    "Index in `LAYERS` of the most specific entry naming `mod` or a package above it; None when no entry does."
    hits = [(len(e), i) for i, (_, entries) in enumerate(LAYERS) for e in entries if mod == e or mod.startswith(e + '.')]
    return max(hits)[1] if hits else None

def module_imports():
    "{fastprune module: the fastprune modules it imports}, `__init__` files named after their package."
    trees = _sources()
    name = lambda m: m[:-len('.__init__')] if m.endswith('.__init__') else m
    mods = {name(m) for m in trees}
    out = {}
    for mod, tree in trees.items():
        deps = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                src = name(_imported_from(mod, node))
                for a in node.names:  # `from . import op_rules` imports the module `<package>.op_rules`
                    deps.add(f'{src}.{a.name}' if f'{src}.{a.name}' in mods else src)
            elif isinstance(node, ast.Import): deps |= {a.name for a in node.names}
        out[name(mod)] = {d for d in deps if d in mods and d != name(mod)}
    return out

def test_every_module_has_a_layer():
    unplaced = sorted(m for m in module_imports() if layer_of(m) is None)
    assert not unplaced, f"modules in no layer: {unplaced}; give each one a layer in LAYERS and on nbs/architecture.ipynb"

def test_imports_go_down_the_layers():
    up = [f"{m} ({LAYERS[layer_of(m)][0]}) imports {d} ({LAYERS[layer_of(d)][0]})"
          for m, deps in sorted(module_imports().items()) for d in sorted(deps) if layer_of(d) > layer_of(m)]
    assert not up, "imports from a higher layer (see nbs/architecture.ipynb):\n" + '\n'.join(up)

def test_no_import_cycle():
    graph, state, cycles = module_imports(), {}, []
    def visit(m, path):
        state[m] = 'open'
        for d in sorted(graph[m]):
            if state.get(d) == 'open': cycles.append(' -> '.join(path[path.index(d):] + [d]))
            elif d not in state: visit(d, path + [d])
        state[m] = 'done'
    for m in sorted(graph):
        if m not in state: visit(m, [m])
    assert not cycles, "import cycles:\n" + '\n'.join(cycles)

def test_the_architecture_page_states_these_layers():
    "The table of nbs/architecture.ipynb lists LAYERS in order: `| n | layer | `module`, ... | ...`"
    import json, re
    nb = json.loads((PKG.parent/'nbs'/'architecture.ipynb').read_text())
    text = '\n'.join(''.join(c['source']) for c in nb['cells'] if c['cell_type'] == 'markdown')
    rows = [r.split('|')[1:4] for r in text.splitlines() if re.match(r'\| \d+ \|', r)]
    page = [(name.strip(), re.findall(r'`([\w.]+)`', mods)) for _, name, mods in rows]
    assert page == [(n, [e for e in entries if e != 'fastprune']) for n, entries in LAYERS], page

def test_the_layer_checks_catch_an_upward_import_and_a_cycle(tmp_path, monkeypatch):
    "The checkers themselves: a lazy import of a higher layer inside a function, which also closes a cycle"
    import pytest
    pkg = tmp_path/'fastprune'; pkg.mkdir()
    (pkg/'utils.py').write_text("def helper():\n    from .deploy import f\n    return f\n")
    (pkg/'deploy.py').write_text("from .utils import helper\ndef f(): pass\n")
    monkeypatch.setitem(globals(), 'PKG', pkg)
    with pytest.raises(AssertionError, match=r'fastprune.utils \(foundation\) imports fastprune.deploy \(applications\)'):
        test_imports_go_down_the_layers()
    with pytest.raises(AssertionError, match='fastprune.deploy -> fastprune.utils -> fastprune.deploy'): test_no_import_cycle()
