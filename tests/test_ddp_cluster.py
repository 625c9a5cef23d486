"""ClusterPruneCallback under real 2-process DistributedDataParallel on CPU (gloo).

Rendering, embedding and clustering run once, on rank 0; every rank takes rank 0's masks, prunes and compacts the
same filters, and only rank 0 keeps the per-layer records. Process spawning, the digits shards and the DDP wrapper
come from `test_ddp` (`run_ranks`, `_learner`); each rank saves what it ended with and the parent compares them.
"""
import pytest, torch
from test_ddp import run_ranks, _learner, _assert_same_state

LAYER, SPARSITY = 'stack1.0.conv', 0.5  # the 16-filter second conv of `test_ddp`'s tiny VGG
RENDER_KW = dict(size=8, steps=2)

def _run(rank):
    "Cluster-prune `LAYER` during a 1-epoch fit on this rank, counting the renderings; returns what the parent compares"
    import fastai.callback.schedule  # noqa: F401  (patches fit_one_cycle)
    from fastai.callback.core import Callback
    import fastprune.cluster as C
    from fastprune.callbacks.cluster import ClusterPruneCallback

    class _Snapshot(Callback):
        "Masks and weights at the end of training, before the callback compacts the model in `after_fit`"
        def after_epoch(self):
            self.masks = {k: v.clone() for k, v in cb.sparsifier.masks.items()}
            self.weight = cb._net.get_submodule(LAYER).weight.detach().clone()

    renders = []
    def counted(model, layer, **kwargs):
        renders.append(next(n for n, m in model.named_modules() if m is layer))
        return real(model, layer, **kwargs)
    real, C.filter_signatures = C.filter_signatures, counted  # what `cluster_layer` calls
    try:
        torch.manual_seed(rank)  # per-rank RNG (data order) as under a real launcher
        encoder = torch.nn.Sequential(torch.nn.Conv2d(3, 6, 3), torch.nn.ReLU())  # differs between ranks: only rank 0's is used
        cb, snap = ClusterPruneCallback(SPARSITY, layers=[LAYER], encoder=encoder, render_kw=RENDER_KW), _Snapshot()
        learn = _learner(rank, cb)
        with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(1, 1e-2, cbs=snap)
    finally: C.filter_signatures = real
    return dict(sd={k: v.detach().clone() for k, v in learn.model.state_dict().items()}, masks=snap.masks,
                weight=snap.weight, renders=renders, compacted=cb.compacted,
                records={l: {k: r[k] for k in ('keep', 'prune', 'labels')} for l, r in cb.records.items()},
                width=learn.model.get_submodule(LAYER).out_channels)

@pytest.fixture(scope='module')
def ranks():
    "[result of rank 0, result of rank 1] from one 2-process run."
    return run_ranks(_run)

def test_masks_identical_sparsity_as_asked(ranks):
    r0, r1 = ranks
    _assert_same_state(r0['masks'], r1['masks'])
    pruned = ~r0['masks'][f'{LAYER}.weight'].flatten(1).any(1)
    assert pruned.sum() == round(SPARSITY * 16)  # 8 clusters kept of 16 filters
    assert torch.equal(pruned.nonzero().flatten(), r0['records'][LAYER]['prune'])  # rank 0's choice, on every rank
    assert torch.equal(r0['weight'], r1['weight']) and (r0['weight'][pruned] == 0).all()

def test_rendered_once_on_rank0(ranks):
    r0, r1 = ranks
    assert r0['renders'] == [LAYER] and r1['renders'] == []
    assert list(r0['records']) == [LAYER] and r1['records'] == {}  # records by rank 0 only
    assert len(r0['records'][LAYER]['keep']) == 8

def test_models_identical_after_compaction(ranks):
    r0, r1 = ranks
    assert r0['compacted'] == r1['compacted'] and r0['compacted'][LAYER] == 8
    assert r0['width'] == r1['width'] == 8
    assert {k: v.shape for k, v in r0['sd'].items()} == {k: v.shape for k, v in r1['sd'].items()}
    _assert_same_state(r0['sd'], r1['sd'])  # weights, BN buffers and the `_mask` buffers
