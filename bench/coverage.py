"""Coverage of the surgery engine on every torchvision classification, segmentation and detection model, one model per
timm family and the YOLOv8-style net of `fastprune.yolo`.

For each model (random weights, nothing downloaded):
1. exactness: zero 30% of the units (chosen at random) of every prunable group whose removal is function-preserving
   (`Group.exact`; LayerNorm/GroupNorm(1) over the channels are not), remove them with `prune_units` and check that
   the eval-mode output is unchanged (max abs difference <= 1e-5 * max(1, max |output|)); for a detector, the output
   compared is that of the part `trace` analyses (`traced_part`: backbone, FPN and heads, raw class logits and box
   regressions), as the score threshold often leaves no box with random weights;
2. coverage: on that model, remove a further 30% of the units of *every* prunable group (exact or not), chosen at
   random, and check that the model still runs and its output shape is unchanged (a detector: that it still returns
   its detections, and its part's outputs keep their shapes).
A model passes coverage when step 2 succeeds, exactness when step 1 does (models with no exact group are not
counted in the exactness total). Patterns the engine cannot follow leave
their groups unprunable with a reason (counted in the `prunable` column); a model fx cannot trace is reported with
its `NotImplementedError`. The `prunable` column is the share of a model's groups (channel sets that move together)
that can be removed; the totals add them up per suite.

Usage: python bench/coverage.py [--only NAME ...] [--limit N] [--suite torchvision|segmentation|detection|yolo|timm|all] [--size 64]
"""
import argparse, random, time, warnings, traceback, gc
import torch
from fastprune.surgery.graph import trace
from fastprune.surgery.detection import traced_part
from fastprune.surgery.edit import prune_units, zero_units

# one model per timm family (smallest variant); test_* are timm's tiny test models of three more families
TIMM = '''resnet10t resnetv2_18 efficientnet_b0 mobilenetv3_small_050 mobilenetv4_conv_small ghostnet_050 ghostnetv2_100
mnasnet_050 regnetx_002 rexnet_100 dla46_c dpn48b densenet121 vgg11 repvgg_a0 cs3darknet_s hrnet_w18_small
res2net50_48w_2s resnest14d skresnet18 selecsls42b tresnet_m xception41p inception_v3 inception_v4 inception_resnet_v2
convnext_atto convnextv2_atto vit_tiny_patch16_224 deit_tiny_patch16_224 swin_tiny_patch4_window7_224 levit_128s
pit_ti_224 mixer_s32_224 gmlp_ti16_224 poolformerv2_s12 efficientformer_l1 efficientformerv2_s0 mobilevit_xxs
mobilevitv2_050 edgenext_xx_small tiny_vit_5m_224 fastvit_t8 repghostnet_050 efficientvit_b0 efficientvit_m0
hgnetv2_b0 hgnet_tiny nf_resnet26 ese_vovnet19b_slim_dw rdnet_tiny pvt_v2_b0 coatnet_nano_rw_224 cait_xxs24_224
xcit_nano_12_p16_224 gcvit_xxtiny davit_tiny focalnet_tiny_srf inception_next_tiny mambaout_femto starnet_s050
repvit_m0_9 hiera_tiny_224 eva02_tiny_patch14_224 volo_d1_224 mixnet_s gernet_s legacy_seresnet18 halonet26t
botnet26t_256 lambda_resnet26t regnetz_b16 nest_tiny twins_svt_small crossvit_tiny_240 convit_tiny coat_lite_tiny
sequencer2d_s visformer_tiny mobileone_s0 fasternet_t0 shvit_s1'''.split()

def torchvision_models():
    import torchvision
    return [(n, lambda n=n: _tv(n)) for n in torchvision.models.list_models(module=torchvision.models)]

def _tv(name):
    import torchvision
    kw = {}
    if name.startswith('vit_'): kw['image_size'] = 56 if name.endswith('_14') else 64  # any multiple of the patch size
    if name in ('googlenet', 'inception_v3'): kw.update(aux_logits=False, init_weights=False)
    return torchvision.models.get_model(name, weights=None, **kw)

def segmentation_models():
    import torchvision
    seg = torchvision.models.segmentation
    return [(n, lambda n=n: torchvision.models.get_model(n, weights=None, weights_backbone=None))
            for n in torchvision.models.list_models(module=seg)]

def detection_models():
    "Every torchvision detector at 128x128 (SSDs at their fixed 300/320)"
    import torchvision
    det = torchvision.models.detection
    kw = lambda n: {} if n.startswith('ssd') else dict(min_size=128, max_size=128)
    return [(n, lambda n=n: torchvision.models.get_model(n, weights=None, weights_backbone=None, **kw(n)))
            for n in torchvision.models.list_models(module=det)]

def yolo_models():
    from fastprune.yolo import YOLOv8
    return [('yolov8n', lambda: YOLOv8(80, width=0.25, depth=0.33)), ('yolov8s', lambda: YOLOv8(80, width=0.5, depth=0.33))]

def timm_models():
    import timm
    return [(n, lambda n=n: timm.create_model(n, pretrained=False)) for n in TIMM]

def _input(model, size):
    "A small input the model accepts: `size`x`size` if it runs, else its own image size, else its configured one."
    cfg = getattr(model, 'pretrained_cfg', None) or getattr(model, 'default_cfg', None) or {}
    for s in (size, getattr(model, 'image_size', None), cfg.get('input_size', (3, 224, 224))[-1]):
        if not isinstance(s, int): continue
        x = torch.randn(1, 3, s, s)
        try:
            with torch.no_grad(): model(x)
            return x
        except Exception: pass
    return torch.randn(1, *cfg.get('input_size', (3, 224, 224)))

def _units(graph, frac, rng, exact_only):
    return {g.producers[0]: rng.sample(range(g.size), int(frac * g.size)) for g in graph.prunable
            if (g.exact or not exact_only) and int(frac * g.size) > 0}

def _outputs(model, x):
    "The outputs compared, as a list of tensors: those of the part `trace` analyses (the model itself, but for detectors)"
    part, xp = traced_part(model, x)
    y = part(xp)
    if isinstance(y, dict): y = list(y.values())
    return list(y) if isinstance(y, (list, tuple)) else [y]

def check(name, factory, size, frac=0.3, seed=0):
    "One line of the report; returns (runs_ok, exact_ok, prunable groups, groups)."
    rng, t0 = random.Random(seed), time.time()
    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        model = factory().eval()
        x = _input(model, size)
        with torch.no_grad(): y0 = _outputs(model, x)
        n0 = sum(p.numel() for p in model.parameters())
        try: graph = trace(model, x)
        except NotImplementedError as e:
            print(f"{name:36s} NOT SUPPORTED  {str(e)[:150]}", flush=True); return False, False, 0, 0
        ng, npr, nex = len(graph.groups), len(graph.prunable), sum(g.exact for g in graph.prunable)
        exact, err = None, ''
        try:  # 1. exactness on zeroed units
            units = _units(graph, frac, rng, exact_only=True)
            if not units: raise LookupError('no exact group to test')
            with torch.no_grad():
                zero_units(model, units, x); y = _outputs(model, x)
                prune_units(model, units, x)
                diff = max((a - b).abs().max().item() for a, b in zip(_outputs(model, x), y))
            exact = diff <= 1e-5 * max(1., *(a.abs().max().item() for a in y))
        except LookupError: exact, diff = None, float('nan')
        except Exception as e: exact, diff, err = False, float('nan'), f"exact: {type(e).__name__}: {e}"
        runs = False
        try:  # 2. coverage: 30% of every prunable group
            graph = trace(model, x)
            prune_units(model, _units(graph, frac, rng, exact_only=False), x)
            with torch.no_grad(): y2 = _outputs(model, x); model(x)
            s0, s2 = [tuple(a.shape) for a in y0], [tuple(a.shape) for a in y2]
            runs = s2 == s0
            if not runs: err += f" output shapes {s2} != {s0}"
        except Exception as e: err += f" prune: {type(e).__name__}: {e}"
        n1 = sum(p.numel() for p in model.parameters())
    print(f"{name:36s} {'ok ' if runs else 'FAIL'} exact={({True: 'yes', False: 'NO', None: 'n/a'})[exact]:3s} groups {npr:3d}/{ng:3d} prunable "
          f"{npr/max(ng, 1):4.0%} ({nex} exact) params {n1/n0:5.2f}x diff {diff:.1e} {time.time()-t0:5.1f}s {err[:200]}", flush=True)
    return runs, exact, npr, ng

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--only', nargs='*', help='model names to run')
    p.add_argument('--limit', type=int, help='at most this many models per suite')
    p.add_argument('--suite', default='all', choices=['torchvision', 'segmentation', 'detection', 'yolo', 'timm', 'all'])
    p.add_argument('--size', type=int, default=64, help='input size tried first')
    a = p.parse_args()
    torch.set_num_threads(1)
    suites = {k: f for k, f in [('torchvision', torchvision_models), ('segmentation', segmentation_models),
                                ('detection', detection_models), ('yolo', yolo_models), ('timm', timm_models)]
              if a.suite in (k, 'all')}
    totals, exact = {}, [0, 0]
    for suite, models in suites.items():
        ms = [m for m in models() if not a.only or m[0] in a.only][:a.limit]
        ok, npr, ng = 0, 0, 0
        for name, factory in ms:
            try: r, e, p, n = check(name, factory, a.size)
            except Exception as err:
                print(f"{name:36s} CRASH {type(err).__name__}: {err}"); traceback.print_exc(); r = e = False; p = n = 0
            ok, npr, ng = ok + r, npr + p, ng + n
            if e is not None: exact[0] += e; exact[1] += 1
            gc.collect()
        totals[suite] = (ok, len(ms), npr, ng)
    print(', '.join(f"{k} {ok}/{n}" for k, (ok, n, _, _) in totals.items()) + f", exact {exact[0]}/{exact[1]}")
    print('groups prunable: ' + ', '.join(f"{k} {p}/{g} ({p/max(g, 1):.0%})" for k, (_, _, p, g) in totals.items()))

if __name__ == '__main__': main()
