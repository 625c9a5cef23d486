"""Fuzz the public API with hypothesis: every call either works or raises ValueError/TypeError naming the argument;
nothing else escapes, and a rejected call leaves the model exactly as it was. Plus: NaN/Inf weights stop pruning."""
import copy, math
import numpy as np
import pytest, torch, torch.nn as nn
from hypothesis import given, settings, strategies as st, HealthCheck
from fastprune.models import vgg_bn, mobilenet_v1, cifar_resnet, selu_net
from fastprune.data import digits_dls
from fastprune.sparsifier import Sparsifier
from fastprune.core.criteria import Criterion, CRITERIA, large_final
from fastprune.core.schedules import Schedule, SCHEDULES
from fastprune.core.granularity import GRANULARITIES
from fastprune.surgery.edit import prune_units, grow_units, compact
from fastprune.callbacks.sparsify import SparsifyCallback
from fastprune.callbacks.lottery import LotteryRewindCallback
from fastprune.callbacks.das import DASGrowPruneCallback
from fastprune.callbacks.cluster import ClusterPruneCallback
from fastprune.deploy import fold_bn, export_onnx, quantize_linear_dynamic, accuracy_change, benchmark_inference
from fastprune.report import compression_report

torch.set_num_threads(1)
FUZZ = settings(max_examples=25, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
torch.manual_seed(0)
TEMPLATE = vgg_bn(widths=((4,), (8,)), fc=8)
X = torch.randn(2, 3, 8, 8)
LAYERS = ['stack0.0.conv', 'stack1.0.conv', 'fc1', 'fc2']

def _model(): return copy.deepcopy(TEMPLATE)

def _snapshot(model):
    "Everything a call could change: tensors (by value), their set, and the size attributes."
    return ({k: v.clone() for k, v in model.state_dict().items()},
            [(n, type(m).__name__, tuple(sorted((k, str(v)) for k, v in vars(m).items() if isinstance(v, (int, tuple)))))
             for n, m in model.named_modules()],
            [(k, len(m._forward_pre_hooks), len(m._state_dict_pre_hooks) if hasattr(m, '_state_dict_pre_hooks') else 0)
             for k, m in model.named_modules()])

def _assert_unchanged(model, snap):
    sd, mods, hooks = _snapshot(model)
    assert sd.keys() == snap[0].keys(), f"tensors added/removed: {set(sd) ^ set(snap[0])}"
    assert all(torch.equal(sd[k], snap[0][k]) for k in sd), [k for k in sd if not torch.equal(sd[k], snap[0][k])]
    assert mods == snap[1] and hooks == snap[2]

BAD = object()  # marker: the drawn value is one the function must reject
def arg(valid, invalid):
    "A (value, is_invalid) strategy: one of `valid` or one of `invalid`."
    return st.one_of(st.sampled_from(valid).map(lambda v: (v, False)), st.sampled_from(invalid).map(lambda v: (v, True)))

def _names_value(msg, v):
    "Does `msg` show the value `v` (its repr, a type's name, or a key of a dict)?"
    if isinstance(v, type): return v.__name__ in msg
    if isinstance(v, (list, tuple)) and v: return any(_names_value(msg, e) for e in v)
    if isinstance(v, dict): return any(repr(k) in msg or _names_value(msg, x) for k, x in v.items())
    if isinstance(v, (torch.Tensor, nn.Module)): return False
    return repr(v) in msg or f'got {type(v).__name__}' in msg

def _call(f, args, model=None, must_accept=True):
    """Call `f(**values)`; check the contract. `args`: {name: (value, invalid)}. Returns the result or None.
    `must_accept`: all-valid calls must succeed (False where valid values can still conflict)."""
    kw = {k: v for k, (v, _) in args.items()}
    bad = {k: v for k, (v, b) in args.items() if b}
    snap = None if model is None else _snapshot(model)
    try: res = f(**kw)
    except (ValueError, TypeError) as e:
        msg = str(e)
        named = [k for k in args if k in msg or _names_value(msg, args[k][0])]
        assert named, f"{type(e).__name__} names none of the arguments {list(args)}: {msg!r} (call {kw})"
        assert bad or not must_accept, f"valid call {kw} rejected: {msg}"
        if model is not None: _assert_unchanged(model, snap)
        return None
    assert not bad, f"invalid argument(s) {bad} accepted (call {kw})"
    return res

# ---- argument pools ---------------------------------------------------------------------------------------------
nan, inf = float('nan'), float('inf')
sparsity = arg([0., 0.3, 0.5, 0.9], [-0.1, 1., 1.5, nan, inf, 'half', None, True, [0.5]])
granularity = arg(['weight', 'filter', 'kernel', 'vector', 'channel'] if 'channel' in GRANULARITIES else ['weight', 'filter', 'kernel'],
                  ['bogus', '', None, 3, 'Filter'])
context = arg(['local', 'global'], ['glob', None, 1])
criteria = arg([*CRITERIA, large_final], ['bogus', None, 3, 'L2'])
layer_type = arg([(nn.Conv2d, nn.Linear), nn.Conv2d, [nn.Linear]], [nn.LSTM, (nn.Embedding,), 'Conv2d', (nn.Conv2d, 'Linear')])
exclude = arg([None, ['fc2'], 'stack0.0.conv', ['stack0']], [['nope'], 'fc9', ['stack0.0.conv', 'fc1', 'stack1.0.conv', 'fc2']])
schedule = arg([*SCHEDULES, SCHEDULES['agp'], SCHEDULES['iterative'](2), lambda p: p], ['bogus', 3, None])
resolution = arg([0.05, 0.5, 1.], [0., -0.1, 1.5, nan])
cb_context = arg(['local', 'global', None], ['glob', 1])  # the callback's None: global with a budget, else local
cb_schedule = arg([*SCHEDULES, SCHEDULES['agp'], SCHEDULES['iterative'](2), lambda p: p, None], ['bogus', 3])  # None: by target
pct = st.sampled_from([-0.5, 0., 0.2, 0.5, 1., 1.5, nan])

# ---- Sparsifier, sparsify -----------------------------------------------------------------------------------------
@FUZZ
@given(g=granularity, c=context, cr=criteria, lt=layer_type, ex=exclude, ei=st.booleans())
def test_fuzz_sparsifier(g, c, cr, lt, ex, ei):
    model = _model()
    # valid combinations can conflict (kernel granularity on a Linear, all layers excluded...): must name the argument
    _call(lambda **kw: Sparsifier(model, example_input=X if ei else None, **kw),
          dict(granularity=g, context=c, criteria=cr, layer_type=lt, exclude=ex), model, must_accept=False)

@FUZZ
@given(s=st.one_of(sparsity.map(lambda v: v), st.sampled_from([({'fc1': 0.5}, False), ({'nope': 0.5}, True),
                                                             ({'fc1': 2.}, True)])))
def test_fuzz_sparsify(s):
    model = _model()
    sp = Sparsifier(model, 'weight')
    sp.sparsify(0.2)
    _call(sp.sparsify, dict(sparsity=s), model)

# ---- callbacks --------------------------------------------------------------------------------------------------
@FUZZ
@given(s=sparsity, g=granularity, c=cb_context, cr=criteria, sc=cb_schedule, r=resolution)
def test_fuzz_sparsify_callback(s, g, c, cr, sc, r):
    _call(SparsifyCallback, dict(sparsity=s, granularity=g, context=c, criteria=cr, schedule=sc, resolution=r))

@FUZZ
@given(pf=arg([0.1, 0.5], [0., 1., -0.2, nan, 'a']), ri=arg([None, 3], [-1, 1.5, 'x']), g=granularity, c=context, cr=criteria)
def test_fuzz_lottery_callback(pf, ri, g, c, cr):
    _call(LotteryRewindCallback, dict(prune_fraction=pf, rewind_iter=ri, granularity=g, context=c, criteria=cr))

@FUZZ
@given(a=arg([0., 1e-4], [-1., 'x', None]), t=arg([1e-3, 0.1], [0., -1e-3, None]), gp=arg([0., 0.2], [-0.1, 'x']),
       mg=arg([0, 5], [-1, 2.5]), reg=arg(['weighted_l1', 'l1', 'group_l21', None], ['l2', 'L1']),
       sa=arg([None, 0, 3], [-1, 1.5]), layers=arg([None, ['fc1']], ['fc1', []]))
def test_fuzz_das_callback(a, t, gp, mg, reg, sa, layers):
    _call(DASGrowPruneCallback, dict(alpha=a, tau=t, growth_pct=gp, min_growth=mg, regularizer=reg, static_after=sa,
                                     layers=layers))

ENCODER = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())  # stands in for AlexNet, whose weights may not be cached

@FUZZ
@given(s=sparsity, seed=arg([0, 3], ['x', -1, 1.5, True, None]),
       rk=arg([None, {'size': 8, 'steps': 2}, {'lr': 0.1, 'bs': None}],
              [{'steps': -1}, {'size': 0}, {'lr': 0}, {'lr': 'x'}, {'bs': 0}, 3, {'bogus': 1}]),
       ek=arg([None, {'bs': 4}, {'size': None}], [{'bs': 0}, {'size': -2}, 'x']), cp=arg([True, False], ['yes', 1, None]),
       layers=arg([None, ['0'], '0'], [3, [], [1]]))
def test_fuzz_cluster_callback(s, seed, rk, ek, cp, layers):
    _call(lambda **kw: ClusterPruneCallback(encoder=ENCODER, **kw),
          dict(sparsity=s, seed=seed, render_kw=rk, encode_kw=ek, compact=cp, layers=layers))

# ---- criteria and schedules -----------------------------------------------------------------------------------
@FUZZ
@given(needs=arg([(), ('init',), ('grad',), ['init', 'grad']], [('weights',), ('Init',)]),
       reduce=arg(['sum', 'mean', 'rms', 'max'], ['median', None, 1]))
def test_fuzz_criterion(needs, reduce):
    c = _call(Criterion, dict(score=(lambda w, w0, g: w.abs(), False), needs=needs, reduce=reduce))
    if c is not None:
        w = torch.randn(4, 3, 3, 3)
        assert c.block_scores(w, (1, 2, 3), w0=w, g=w).shape == (4,)

@FUZZ
@given(name=st.sampled_from(sorted(SCHEDULES)), start=pct, end=pct)
def test_fuzz_schedules(name, start, end):
    ok = 0 <= start <= end <= 1  # NaN compares False: rejected
    s = _call(SCHEDULES[name], dict(start_pct=(start, not ok), end_pct=(end, not ok)))
    if s is not None:
        ys = [s(p / 20) for p in range(21)]
        assert all(0 <= y <= 1 for y in ys) and ys == sorted(ys) and ys[-1] == 1

# ---- surgery ----------------------------------------------------------------------------------------------------
units = st.sampled_from([({'stack0.0.conv': [0]}, False), ({'fc1': [1, 2]}, False), ({'stack1.0.conv': torch.tensor([3])}, False),
                         ({'stack0.0.conv': [4]}, True), ({'stack0.0.conv': [-1]}, True), ({'stack0.0.conv': [0, 0]}, True),
                         ({'stack0.0.conv': [0, 1, 2, 3]}, True), ({'nope': [0]}, True), ({'fc2': [0]}, True),
                         ([('fc1', [0])], True), ({'fc1': ['a']}, True), ({'fc1': [0.9]}, True), ({'fc1': 3}, True),
                         ({'fc1': [True]}, True), ({'fc1': torch.tensor([1.7])}, True), ({'fc1': torch.ones(3, dtype=torch.bool)}, True),
                         ({'fc1': torch.arange(8) % 3 == 0}, False), ({'fc1': np.array([1, 4])}, False)])

@FUZZ
@given(u=units, with_opt=st.booleans())
def test_fuzz_prune_units(u, with_opt):
    model = _model()
    opt = torch.optim.SGD(model.parameters(), 0.1, momentum=0.9) if with_opt else None
    if opt: model(X).sum().backward(); opt.step()
    masks = {n: torch.ones_like(p, dtype=torch.bool) for n, p in model.named_parameters()}
    res = _call(prune_units, dict(model=(model, False), units=u, example_input=(X, False), opt=(opt, False),
                                  param_state=([masks], False)), model)
    if res is not None: assert model(X).shape == (2, 10)

@FUZZ
@given(c=st.sampled_from([({'fc1': 2}, False), ({'stack0.0.conv': 0}, False), ({'fc1': -1}, True), ({'fc1': 1.5}, True),
                          ({'fc2': 1}, True), ({'nope': 1}, True), ({'fc1': True}, True), ({'fc1': np.int64(2)}, False)]),
       s=st.sampled_from([(1e-3, False), (1., False), (-1., False), (float('nan'), True), ('x', True)]))
def test_fuzz_grow_units(c, s):
    model = _model()
    res = _call(grow_units, dict(model=(model, False), counts=c, example_input=(X, False), init_scale=s), model)
    if res is not None:
        model.eval(); TEMPLATE.eval()
        assert torch.allclose(model(X), TEMPLATE(X), atol=1e-5)  # growing never changes the function

@FUZZ
@given(opt=st.sampled_from([(None, False), ('adam', True), (42, True)]))
def test_fuzz_compact(opt):
    model = _model()
    _call(compact, dict(model=(model, False), example_input=(X, False), opt=opt), model)

def _filter_sparsifier(m, x): return Sparsifier(m, 'filter', example_input=x)

BAD_INPUTS = [torch.randn(2, 3), torch.randn(2, 5, 8, 8), 'image', None]

@pytest.mark.parametrize('x', BAD_INPUTS, ids=['2d', 'channels', 'str', 'none'])
@pytest.mark.parametrize('f', [compact, lambda m, x: prune_units(m, {'fc1': [0]}, x), lambda m, x: grow_units(m, {'fc1': 1}, x),
                               _filter_sparsifier, compression_report,
                               lambda m, x: benchmark_inference(m, x, backends='torch', batch_sizes=(1,), n_repeats=1)],
                         ids=['compact', 'prune', 'grow', 'sparsifier', 'report', 'benchmark'])
def test_bad_example_input_is_value_error(f, x):
    if f is _filter_sparsifier and x is None: return  # a Sparsifier without example input is valid: no coupling groups
    model = _model()
    snap = _snapshot(model)
    with pytest.raises((ValueError, TypeError), match='example_input'): f(model, x)
    _assert_unchanged(model, snap)

@pytest.mark.parametrize('kw', [dict(counts=['fc1']), dict(counts={'fc1': 1}, init_scale=nan), dict(counts={'fc1': 1}, init_scale='x')],
                         ids=['counts_list', 'nan_scale', 'str_scale'])
def test_grow_units_bad_args_named(kw):
    model = _model()
    snap = _snapshot(model)
    name = 'init_scale' if 'init_scale' in kw else 'counts'
    with pytest.raises((ValueError, TypeError), match=name): grow_units(model, example_input=X, **kw)
    _assert_unchanged(model, snap)

# ---- models, report -------------------------------------------------------------------------------------------------
n_classes, in_ch = arg([10, 3], [0, -1, 2.5, '3', True]), arg([3, 1], [0, 'x', None])
BUILDERS = {  # builder: its argument pools; every built model must run on a small input
    vgg_bn: dict(n_classes=n_classes, in_ch=in_ch, fc=arg([8], [0, None]),
                 widths=arg([((4,), (8,)), [[4, 4]]], [(), ((0,),), ((4,), ()), 4, ((4.5,),), 'ab'])),
    mobilenet_v1: dict(n_classes=n_classes, in_ch=in_ch, stem=arg([8], [0, 1.5]),
                       width_mult=arg([0.25, 1], [0, -1, nan, inf, 'x']),
                       cfg=arg([((8, 1), (16, 2))], [(), ((8,),), ((8, 0),), ((8, 1, 1),), 8])),
    selu_net: dict(n_classes=n_classes, in_ch=in_ch, width=arg([4, 8], [0, -3, 'a', True])),
    cifar_resnet: dict(depth=arg([8], [7, -2, '20']), n_classes=n_classes, weights=arg([None], [3, 'no/such/file.th'])),
}

@pytest.mark.parametrize('builder', list(BUILDERS), ids=lambda b: b.__name__)
@FUZZ
@given(data=st.data())
def test_fuzz_model_builders(builder, data):
    args = {k: data.draw(pool, label=k) for k, pool in BUILDERS[builder].items()}
    model = _call(builder, args)
    if model is not None:
        n, c = args['n_classes'][0], args.get('in_ch', (3,))[0]
        assert model(torch.randn(2, c, 8, 8)).shape == (2, n)

@settings(max_examples=10, deadline=None, derandomize=True)
@given(backends=arg([(), 'torch', ['torch']], ['tvm', None, 3, ('torch', 'x')]), n_repeats=arg([1], [0, 'x']))
def test_fuzz_compression_report(backends, n_repeats):
    model = _model()
    r = _call(compression_report, dict(model=(model, False), example_input=(X, False), n_repeats=n_repeats, backends=backends), model)
    if r is not None: assert r.params == sum(p.numel() for p in model.parameters()) and len(r.backend_latency_ms) == 2 * bool(backends[0])

# ---- data, deploy -------------------------------------------------------------------------------------------------
@settings(max_examples=12, deadline=None, derandomize=True)
@given(size=arg([8, 12], [0, -1, 8.5, '8']), bs=arg([16, 100], [0, -4, 2.5]), vp=arg([0.1, 0.5], [0., 1., -0.2, 1.5, nan]),
       seed=st.sampled_from([(0, False), (3, False)]))  # a bad seed: see the xfail above
def test_fuzz_digits_dls(size, bs, vp, seed):
    dls = _call(digits_dls, dict(size=size, bs=bs, valid_pct=vp, seed=seed))
    if dls is not None:
        xb, yb = dls.train.one_batch()
        assert xb.shape[1:] == (3, size[0], size[0]) and len(dls.valid.dataset) == round(1797 * vp[0])

def test_digits_dls_bad_seed_named():
    with pytest.raises((ValueError, TypeError), match='seed'): digits_dls(size=8, seed='x')

@settings(max_examples=6, deadline=None, derandomize=True)
@given(m=st.sampled_from([(TEMPLATE, False), ('model', True), (None, True), (42, True)]))
def test_fuzz_fold_bn(m):
    snap = _snapshot(TEMPLATE)
    _call(fold_bn, dict(model_or_learn=m))
    _assert_unchanged(TEMPLATE, snap)

QUANTIZED = quantize_linear_dynamic(TEMPLATE)  # no exporter captures it

@settings(max_examples=10, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(m=st.sampled_from([(TEMPLATE, False), (QUANTIZED, True), ('model', True)]), atol=arg([1e-4, 0.1], ['x', nan, inf, -1., None]),
       x=arg([X], [torch.randn(2, 5, 8, 8), torch.randn(2, 3), 'img']), exporter=arg(['torchscript'], ['jit', None]),
       opset=arg([None, 17], ['x', 3]))
def test_fuzz_export_onnx(tmp_path, m, atol, x, exporter, opset):  # the legacy exporter: valid calls export in well under a second
    path = tmp_path/f'{len(list(tmp_path.iterdir()))}.onnx'
    snap = _snapshot(TEMPLATE)
    res = _call(export_onnx, dict(model_or_learn=m, path=(path, False), example_input=x, atol=atol, exporter=exporter,
                                  opset_version=opset, dynamic_batch=(False, False)))
    assert path.exists() == (res is not None)  # a rejected call writes nothing
    _assert_unchanged(TEMPLATE, snap)

@settings(max_examples=12, deadline=None, derandomize=True)
@given(backends=arg([('torch',), 'torch'], ['tvm', (), None, ('torch', 'x')]), bss=arg([(1,), [2, 1]], [(0,), 5, (True,), ()]),
       n_repeats=arg([1], [0, 'x', 1.5]), n_warmup=arg([0, 1], [-1, 'x']))
def test_fuzz_benchmark_inference(backends, bss, n_repeats, n_warmup):
    model = _model()
    df = _call(benchmark_inference, dict(model=(model, False), example_input=(X, False), backends=backends, batch_sizes=bss,
                                         n_repeats=n_repeats, n_warmup=n_warmup), model)
    if df is not None: assert set(df.backend) == {'torch'} and sorted(df.batch_size) == sorted(bss[0])

@settings(max_examples=8, deadline=None, derandomize=True)
@given(dls=arg([[(X, torch.tensor([0, 1]))], [(X[:1], torch.tensor([3]))] * 2], [[], 3, None, [X], [(X,)]]))
def test_fuzz_accuracy_change(dls):
    res = _call(accuracy_change, dict(before=(TEMPLATE, False), after=(_model(), False), dls=dls))
    if res is not None: assert 0 <= res['before'] <= 1 and res['change'] == 0  # the same weights

# ---- non-finite weights ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize('bad', [nan, inf, -inf])
@pytest.mark.parametrize('gran', ['weight', 'filter'])
def test_nonfinite_weights_raise_naming_layer(bad, gran):
    model = _model()
    with torch.no_grad(): model.fc1.weight[0, 0] = bad
    sp = Sparsifier(model, gran, example_input=X)
    masks = {k: v.clone() for k, v in sp.masks.items()}
    with pytest.raises(ValueError, match='fc1'): sp.sparsify(0.5)
    assert all(torch.equal(v, masks[k]) for k, v in sp.masks.items())  # nothing pruned
