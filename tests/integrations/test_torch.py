from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

import runstack  # noqa: E402
from runstack.errors import InvalidArgumentError  # noqa: E402


def test_watch_logs_gradient_and_parameter_norms_and_unwatch_removes_hooks(store_dir):
    run = runstack.init()
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 1))
    runstack.watch(model, log="all", log_freq=2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    expected = {}
    for step in range(6):
        x = torch.randn(5, 3)
        params = {n: p.detach().norm().item() for n, p in model.named_parameters()}
        loss = model(x).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        if (step + 1) % 2 == 0:
            expected[step] = params | {f"g:{n}": p.grad.norm().item() for n, p in model.named_parameters()}
        optimizer.step()
        run.log({"loss": loss.item()})
    runstack.unwatch(model)
    assert not model._forward_pre_hooks
    assert all(not getattr(p, "_post_accumulate_grad_hooks", None) for p in model.parameters())
    frame = run.history()
    assert frame["_step"].tolist() == list(range(6))
    for step, norms in expected.items():
        for name, value in norms.items():
            key = f"gradients/{name[2:]}.norm" if name.startswith("g:") else f"parameters/{name}.norm"
            assert frame.loc[step, key] == pytest.approx(value)
    assert frame["gradients/0.weight.norm"].isna().tolist() == [True, False, True, False, True, False]
    with pytest.raises(InvalidArgumentError, match="log='weights'"):
        runstack.watch(model, log="weights")
