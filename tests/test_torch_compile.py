"""torch.compile: exact values, clean names, no graph break and no recompilation from netlapse."""
import numpy as np
import pytest
import torch
from torch import nn
from torch._dynamo.utils import counters

import netlapse as nl


class Block(nn.Module):
    """A reused in-place ReLU and an in-place residual add, as in torchvision's BasicBlock."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(6, 6)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Linear(6, 6)
        self.head = nn.Linear(6, 3)

    def forward(self, x):
        out = self.fc2(self.relu(self.fc1(x)))
        out += x
        return self.head(self.relu(out))


STEPS = 6


def by_call(calls):
    return {(n if k == 1 else f"{n}:{k}"): t for n, ts in calls.items() for k, t in enumerate(ts, 1)}


def dynamo_counts():
    return {"graphs": counters["stats"]["unique_graphs"], "frames": counters["frames"]["total"],
            "breaks": sum(counters["graph_break"].values())}


def train(model, step_fn, opt, data, own=None, on_step=None):
    """Train STEPS steps; return Dynamo's counts after step 2 and at the end."""
    after_two = None
    for step in range(1, STEPS + 1):
        x, y = data[step % len(data)]
        if own is not None:
            own["calls"].clear()
        loss = nn.functional.cross_entropy(step_fn(x), y)
        opt.zero_grad()
        loss.backward()
        if on_step is not None:
            on_step(step)
        opt.step()
        if own is not None:
            own["weights"][step] = {n: p.detach().clone() for n, p in model.named_parameters()}
            model.eval()                     # the probe, through the eager model's own hooks
            own["calls"].clear()
            with torch.no_grad():
                model._call_impl(own["probe_x"])   # eager, even after model.compile()
            own["probe"][step] = by_call(own["calls"])
            model.train()
        if step == 2:
            after_two = dynamo_counts()
    return after_two, dynamo_counts()


def bare_counts(backend, data):
    torch._dynamo.reset()
    counters.clear()
    torch.manual_seed(0)
    model = Block()
    return train(model, torch.compile(model, backend=backend), torch.optim.SGD(model.parameters(), lr=0.1), data)


@pytest.mark.parametrize("order,every,backend", [
    ("watch-then-compile", 1, "aot_eager"), ("watch-then-compile", 3, "aot_eager"),
    ("compile-in-place-run-watch", 1, "aot_eager"), ("compile-run-watch", 3, "inductor")])
def test_compiled_model_records_as_eager(tmp_path, order, every, backend):
    g = torch.Generator().manual_seed(1)
    data = [(torch.randn(8, 6, generator=g), torch.randint(0, 3, (8,), generator=g)) for _ in range(3)]
    bare_two, bare_end = bare_counts(backend, data)

    torch._dynamo.reset()
    counters.clear()
    torch.manual_seed(0)
    model = Block()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    probe = torch.randn(4, 6, generator=g)
    own = {"calls": {}, "acts": {}, "grads": {}, "weights": {}, "probe": {}}
    for name, m in model.named_children():   # the test's own copies, as each call returns
        m.register_forward_hook(lambda mod, i, o, name=name: own["calls"].setdefault(name, []).append(
            o.detach().clone()))

    own["probe_x"] = probe

    def keep(step):
        own["acts"][step] = by_call(own["calls"])
        own["grads"][step] = {n: p.grad.clone() for n, p in model.named_parameters()}

    run = nl.Run(tmp_path / "r")
    if order == "watch-then-compile":
        w = nl.watch(model, run, opt, every=every, weights="full", grads="full",
                     activations="full", probe=probe)
        compiled = torch.compile(model, backend=backend)
    else:   # compiled, already run once, then watched (the compiled wrapper, or in place)
        if order == "compile-in-place-run-watch":
            model.compile(backend=backend)
            compiled = model
        else:
            compiled = torch.compile(model, backend=backend)
        compiled(data[0][0]).sum().backward()
        opt.zero_grad()
        w = nl.watch(compiled, run, opt, every=every, weights="full", grads="full",
                     activations="full", probe=probe)
        own["calls"].clear()
    with _no_warning():
        two, end = train(model, compiled, opt, data, own, keep)
    w.close()
    run.close()

    r = nl.open_run(tmp_path / "r")
    assert not [s for s in r.streams() if "_orig_mod" in s]
    due = [k for k in range(1, STEPS + 1) if k % every == 0]
    for name in ("fc1", "relu", "relu:2", "fc2", "head"):
        s = r[f"activations/{name}"]
        assert list(s.steps) == due
        for k in due:
            np.testing.assert_array_equal(s.at(k), own["acts"][k][name].numpy(), err_msg=name)
    # fc2's output was changed in place by `out += x` later in the graph: stored as it returned
    assert not np.array_equal(r["activations/fc2"].at(due[0]), r["activations/relu:2"].at(due[0]))
    for n, _ in model.named_parameters():
        assert list(r[f"weights/{n}"].steps) == [0] + due
        assert list(r[f"grads/{n}"].steps) == due
        for k in due:
            np.testing.assert_array_equal(r[f"weights/{n}"].at(k), own["weights"][k][n].numpy())
            np.testing.assert_array_equal(r[f"grads/{n}"].at(k), own["grads"][k][n].numpy())
    for name in ("fc1", "relu", "relu:2", "fc2", "head"):
        assert list(r[f"probe/{name}"].steps) == [0] + due
        for k in due:
            np.testing.assert_array_equal(r[f"probe/{name}"].at(k), own["probe"][k][name].numpy())
    # Dynamo: no graph break, and nothing recompiles after the first captured and uncaptured steps
    assert end["breaks"] == bare_end["breaks"] == 0
    assert end == two
    extra = 1 if order.endswith("run-watch") else 0   # the one retrace that takes in the hooks
    assert end["graphs"] <= bare_end["graphs"] + extra
    assert end["frames"] <= bare_end["frames"] + extra


class _no_warning:
    def __enter__(self):
        import warnings

        self._cm = warnings.catch_warnings()
        self._cm.__enter__()
        warnings.simplefilter("error", RuntimeWarning)

    def __exit__(self, *exc):
        self._cm.__exit__(*exc)


def test_compiled_training_step_called_before_watch_is_reported(tmp_path):
    """A compiled function that calls the model keeps its hook-less graph: said, not silent."""
    torch._dynamo.reset()
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)

    @torch.compile(backend="aot_eager")
    def loss_of(x):
        return model(x).pow(2).mean()

    loss_of(torch.randn(5, 3)).backward()
    opt.zero_grad()
    with nl.Run(tmp_path / "r") as run, nl.watch(model, run, opt, weights=None, grads=None,
                                                 activations="stats"):
        with pytest.warns(RuntimeWarning, match="no activations were captured for step 1"):
            loss_of(torch.randn(5, 3)).backward()
            opt.step()
    assert not [s for s in nl.open_run(tmp_path / "r").streams() if s.startswith("activations/")]


@pytest.mark.parametrize("called", ["compiled", "compiled-then-eager"])
def test_compiled_container_gets_no_netlapse_op_in_its_graph(tmp_path, monkeypatch, called):
    """torch.compile traces an nn.Sequential's own hooks into its graph. Given the compiled
    wrapper, watch() signals the forward pass from the wrapper's hook instead: the graph is the
    bare model's, and the weights are still handed over in place at every forward pass (also
    when the model itself is called eagerly), exact."""
    from in_place_helpers import batch, hook_captures, tiny_model

    def graphs_of(model, steps, watch_dir=None):
        torch._dynamo.reset()
        graphs = []

        def backend(gm, example_inputs):
            graphs.append(gm)
            return gm.forward

        compiled = torch.compile(model, backend=backend)
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        run = w = None
        if watch_dir is not None:
            compiled(batch(0)[0])   # compiled and run once before watch(), as users do
            run = nl.Run(watch_dir)
            w = nl.watch(compiled, run, opt, grads=None)
        weights = {}
        for step in range(1, steps + 1):
            x, y = batch(step)
            forward = model if called == "compiled-then-eager" and step > 2 else compiled
            opt.zero_grad()
            nn.functional.cross_entropy(forward(x), y).backward()
            opt.step()
            weights[step] = {n: p.detach().clone() for n, p in model.named_parameters()}
        if w is not None:
            w.close()
            run.close()
        return graphs, weights

    def ops(graphs):
        return [str(node.target) for gm in graphs for node in gm.graph.nodes
                if node.op == "call_function"]

    bare_graphs, _ = graphs_of(tiny_model(), 4)
    handed_over = []   # weights handed over in place (the writer may still find them copied)
    hook_captures(monkeypatch, "weights", lambda cap, event: event == "taken" and
                  handed_over.append(cap.step))
    graphs, weights = graphs_of(tiny_model(), 4, tmp_path / "r")

    # the graph traced before watch(), then the one retrace that takes in the hooks: the same ops
    assert len(graphs) == len(bare_graphs) + 1
    assert ops(graphs[-1:]) == ops(bare_graphs[-1:])
    assert not [op for op in ops(graphs) if "netlapse" in op]
    assert sorted(handed_over) == [0, 1, 2, 3]   # each at the next forward pass
    r = nl.open_run(tmp_path / "r")
    for n in ("0.weight", "0.bias", "2.weight", "2.bias"):
        s = r[f"weights/{n}"]
        assert list(s.steps) == [0, 1, 2, 3, 4]
        for i, k in enumerate(s.steps[1:], 1):
            assert s.stats.iloc[i]["max"] == weights[k][n].max().item()
            assert s.stats.iloc[i]["min"] == weights[k][n].min().item()
