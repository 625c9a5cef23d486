"Property tests of the surgery engine over randomly generated CNNs and vision transformers, plus exactness on torchvision and timm models."
import warnings
import pytest, torch, torch.nn as nn, torch.nn.functional as F
from hypothesis import given, settings, strategies as st, HealthCheck
from fastprune.surgery.graph import trace
from fastprune.surgery.edit import prune_units, grow_units, compact, zero_units

torch.set_num_threads(1)

def _bn(c, on): return nn.BatchNorm2d(c) if on else nn.Identity()

class RandNet(nn.Module):
    """A tiny CNN: stem, then stages with optional grouped conv, depthwise-separable conv, residual add and concat branch; a
    flatten or GAP head; `transposed`: the stages' convs are `ConvTranspose2d` (same shapes, weight dims 0 and 1 swapped).
    `act` is ReLU, or Sigmoid, which turns zeroed channels into 0.5 (their removal is then inexact).
    `shared`: BatchNorm + PReLU + depthwise conv applied to the stage's channels and also to a fixed-width tensor made
    from the raw input (its output gates the stage), so the stage's channels cannot be removed.
    `split` (even widths): a C2f-style split, `chunk(2)` with a conv on the second half, all three concatenated;
    `shuffle`: a channel shuffle of 2 groups after each stage of even width (`'view'`: ShuffleNet's view/transpose,
    `'module'`: `nn.ChannelShuffle`)."""
    def __init__(self, widths, residual, concat, depthwise, grouped, bn, flatten_head, act=nn.ReLU, size=8, shared=False,
                 transposed=False, split=False, shuffle=None):
        super().__init__()
        conv = nn.ConvTranspose2d if transposed else nn.Conv2d
        self.residual, self.concat, self.depthwise, self.flatten_head, self.shared = residual, concat, depthwise, flatten_head, shared
        self.stem = nn.Sequential(nn.Conv2d(3, widths[0], 3, padding=1), _bn(widths[0], bn), act())
        ni, self.stages = widths[0], nn.ModuleList()
        for i, w in enumerate(widths[1:]):
            s = nn.Module()
            s.conv = nn.Sequential(conv(ni, w, 3, padding=1), _bn(w, bn), act())
            if grouped and w % 2 == 0: s.conv.append(nn.Sequential(conv(w, w, 3, padding=1, groups=2), _bn(w, bn), nn.ReLU()))
            if depthwise: s.dw = nn.Sequential(conv(w, 2*w, 3, padding=1, groups=w), _bn(2*w, bn), nn.ReLU6(), conv(2*w, w, 1))
            if shared: s.width, s.follow = w, nn.Sequential(nn.BatchNorm2d(w), nn.PReLU(w), conv(w, w, 3, padding=1, groups=w))
            if residual: s.short = nn.Identity() if ni == w else conv(ni, w, 1)
            if concat: s.branch = conv(ni, 2 + i, 1)
            ni = w + (2 + i if concat else 0)
            if split and ni % 2 == 0: s.split_conv = nn.Sequential(conv(ni // 2, ni // 2, 3, padding=1), nn.ReLU()); ni += ni // 2
            s.shuffle = shuffle if ni % 2 == 0 else None
            if s.shuffle == 'module': s.shuffle_layer = nn.ChannelShuffle(2)
            self.stages.append(s)
        self.head = nn.Linear(ni*size*size, 5) if flatten_head else nn.Sequential(nn.Linear(ni, 7), nn.ReLU(), nn.Linear(7, 5))

    def forward(self, x):
        x0, x = x, self.stem(x)
        for s in self.stages:
            y = s.conv(x)
            if self.depthwise: y = s.dw(y)
            if self.shared: y = s.follow(y) * torch.sigmoid(s.follow(x0[:, :1].expand(-1, s.width, -1, -1)).mean())
            if self.residual: y = y + s.short(x)
            if self.concat: y = torch.cat([y, F.relu(s.branch(x))], 1)
            if hasattr(s, 'split_conv'):
                a, b = y.chunk(2, 1)
                y = torch.cat([a, b, s.split_conv(b)], 1)
            if s.shuffle == 'module': y = s.shuffle_layer(y)
            elif s.shuffle == 'view':
                n, c, h, w = y.shape
                y = y.view(n, 2, c // 2, h, w).transpose(1, 2).reshape(n, c, h, w)
            x = y
        return self.head(torch.flatten(x, 1) if self.flatten_head else x.mean((2, 3)))

nets = st.builds(RandNet, widths=st.lists(st.integers(2, 6), min_size=1, max_size=4), residual=st.booleans(),
                 concat=st.booleans(), depthwise=st.booleans(), grouped=st.booleans(), bn=st.booleans(), flatten_head=st.booleans(),
                 act=st.sampled_from([nn.ReLU, nn.Sigmoid]), shared=st.booleans(), transposed=st.booleans(),
                 split=st.booleans(), shuffle=st.sampled_from([None, 'view', 'module']))

try:
    from timm.layers.attention import Attention as TimmAttention  # imported after fastprune: its rule registers itself
except ImportError: TimmAttention = None

class RandBlock(nn.Module):
    """A transformer block on tokens `(B, N, d)`: attention (`'mha'`: `nn.MultiheadAttention` batch first, `'mha_seq'`:
    sequence first, as torchvision's ViT; `'timm'`: timm's `Attention`), then an MLP (`glu`: its hidden layer chunked
    in two halves along the channels, one gating the other); `norm`: LayerNorm before each (pre-norm)."""
    def __init__(self, d, heads, attn, norm, glu, ratio, bias):
        super().__init__()
        self.kind, self.glu = attn, glu
        self.n1, self.n2 = (nn.LayerNorm(d), nn.LayerNorm(d)) if norm else (nn.Identity(), nn.Identity())
        self.attn = (TimmAttention(d, heads, qkv_bias=bias) if attn == 'timm' else
                     nn.MultiheadAttention(d, heads, bias=bias, batch_first=attn == 'mha'))
        h = ratio * d
        self.fc1, self.fc2 = nn.Linear(d, 2*h if glu else h), nn.Linear(h, d)
    def forward(self, x):
        y = self.n1(x)
        if self.kind == 'timm': y = self.attn(y)
        elif self.kind == 'mha': y = self.attn(y, y, y, need_weights=False)[0]
        else: y = y.transpose(0, 1); y = self.attn(y, y, y, need_weights=False)[0].transpose(0, 1)
        x = x + y
        h = self.fc1(self.n2(x))
        if self.glu: a, b = h.chunk(2, -1); h = a * F.silu(b)
        else: h = F.gelu(h)
        return x + self.fc2(h)

class RandViT(nn.Module):
    """A tiny vision transformer on 8x8 images: a conv patch embedding (4 tokens of `heads*head_dim` channels), an
    optional class token, `RandBlock`s (one `attn` kind each), pooling by the class token or the mean, a linear head."""
    def __init__(self, heads, head_dim, attns, norm, glu, ratio, bias, cls_token):
        super().__init__()
        d = heads * head_dim
        self.embed = nn.Conv2d(3, d, 4, stride=4)
        self.cls = nn.Parameter(torch.randn(1, 1, d)) if cls_token else None
        self.blocks = nn.Sequential(*[RandBlock(d, heads, a, norm, glu, ratio, bias) for a in attns])
        self.head = nn.Linear(d, 5)
    def forward(self, x):
        x = self.embed(x).flatten(2).transpose(1, 2)
        if self.cls is not None: x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], 1)
        x = self.blocks(x)
        return self.head(x[:, 0] if self.cls is not None else x.mean(1))

_ATTNS = ['mha', 'mha_seq'] + (['timm'] if TimmAttention is not None else [])
vits = st.builds(RandViT, heads=st.integers(1, 4), head_dim=st.integers(1, 3), attns=st.lists(st.sampled_from(_ATTNS), min_size=1, max_size=3),
                 norm=st.booleans(), glu=st.booleans(), ratio=st.integers(1, 2), bias=st.booleans(), cls_token=st.booleans())

def _randomize(m):
    "Random BatchNorm statistics and norm affine parameters, so eval mode is non-trivial."
    with torch.no_grad():
        for b in m.modules():
            if isinstance(b, nn.BatchNorm2d):
                b.running_mean.uniform_(-1, 1); b.running_var.uniform_(0.5, 2); b.weight.uniform_(0.5, 1.5); b.bias.uniform_(-.5, .5)
            if isinstance(b, nn.LayerNorm): b.weight.uniform_(0.5, 1.5); b.bias.uniform_(-.5, .5)
    return m.eval()

def _random_units(m, x, data, max_frac=1.0):
    "Random units (at least one kept) for every prunable group, drawn by hypothesis."
    units = {}
    for g in trace(m, x).prunable:
        if g.size < 2: continue
        idx = data.draw(st.lists(st.integers(0, g.size - 1), unique=True, max_size=max(1, int(max_frac*(g.size - 1)))))
        if idx: units[g.producers[0]] = idx
    return units

slow = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MODELS = {'cnn': nets, 'vit': vits}  # each test draws 25 of each

@pytest.mark.parametrize('kind', MODELS)
@slow
@given(data=st.data())
def test_zero_then_compact_is_exact(kind, data):
    m = data.draw(MODELS[kind])
    m, x = _randomize(m), torch.randn(3, 3, 8, 8)
    units = _random_units(m, x[:1], data)
    exact = {p for g in trace(m, x[:1]).groups if g.exact for p in g.producers}
    y = zero_units(m, units, x[:1])(x)
    removed = compact(m, x[:1])
    assert torch.allclose(m(x), y, atol=1e-5)
    for layer, idx in units.items():
        if layer in exact: assert removed.get(layer, 0) >= len(idx)

@pytest.mark.parametrize('kind', MODELS)
@slow
@given(data=st.data())
def test_prune_keeps_shape_and_trains(kind, data):
    m = data.draw(MODELS[kind])
    x = torch.randn(3, 3, 8, 8)
    units = _random_units(m, x[:1], data, max_frac=0.5)
    n0 = sum(p.numel() for p in m.parameters())
    opt = torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
    m(x).sum().backward(); opt.step()
    prune_units(m, units, x[:1], opt=opt)
    assert m(x).shape == (3, 5)
    assert sum(p.numel() for p in m.parameters()) <= n0 - (len(units) > 0)
    opt.zero_grad(); m(x).sum().backward(); opt.step()

@pytest.mark.parametrize('kind', MODELS)
@slow
@given(data=st.data())
def test_grow_is_exact(kind, data):
    m = data.draw(MODELS[kind])
    m, x = _randomize(m), torch.randn(3, 3, 8, 8)
    counts = {g.producers[0]: data.draw(st.integers(0, 3)) for g in trace(m, x[:1]).prunable
              if g.exact_unused}  # units that no layer reads change nothing (unlike channels a LayerNorm normalises)
    y = m(x)
    grow_units(m, counts, x[:1])
    assert torch.allclose(m(x), y, atol=1e-5)

def _zero_compact_exact(m, x, frac=0.3):
    m = _randomize(m)
    gen = torch.Generator().manual_seed(0)
    units = {g.producers[0]: torch.randperm(g.size, generator=gen)[:int(frac*g.size)].tolist()
             for g in trace(m, x).prunable if g.exact and g.size > 1}
    y = zero_units(m, units, x)(x)
    removed = compact(m, x)
    assert sum(removed.values()) >= sum(len(v) for v in units.values()) > 0
    out = m(x)
    assert torch.allclose(out, y, atol=1e-5 * max(1., y.abs().max().item()))

@pytest.mark.parametrize('name', ['resnet18', 'mobilenet_v2', 'resnext50_32x4d'])
def test_torchvision_exact(name):
    import torchvision
    _zero_compact_exact(getattr(torchvision.models, name)(weights=None), torch.randn(2, 3, 64, 64))

@pytest.mark.parametrize('name', ['resnet10t', 'mobilenetv3_small_050', 'efficientnet_b0'])
def test_timm_exact(name):
    timm = pytest.importorskip('timm')
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        _zero_compact_exact(timm.create_model(name, pretrained=False), torch.randn(2, 3, 64, 64))

@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(vits, st.floats(0, 0.7), st.sampled_from(['local', 'global']))
def test_head_masks_compact_exactly(m, sparsity, context):
    "Granularity 'head': masked heads are removed by compact without changing the output, and num_heads follows."
    from fastprune.sparsifier import Sparsifier
    m, x = _randomize(m), torch.randn(3, 3, 8, 8)
    try: sp = Sparsifier(m, 'head', context, example_input=x[:1])
    except ValueError as e: return assert_no_heads(e)
    if context == 'local' and any(round(sparsity * b.n_blocks(sp)) >= b.n_blocks(sp) for b in sp.blocks): return
    sp.sparsify(sparsity); sp.apply_masks()
    pruned = {b.name: int(b.pruned(sp).sum()) for b in sp.blocks}
    heads = {b.name: m.get_submodule(b.name).num_heads for b in sp.blocks}
    with torch.no_grad(): y = m(x)
    removed = compact(m, x[:1], param_state=[sp.detach()[0]])
    with torch.no_grad(): assert torch.allclose(m(x), y, atol=1e-5)
    for n, k in pruned.items():
        assert removed.get(n, 0) == k and m.get_submodule(n).num_heads == heads[n] - k

def assert_no_heads(e):
    "Sparsifier refused: only when no block set was left (every attention layer's heads unprunable, e.g. one head)."
    assert 'No prunable layer' in str(e), e
