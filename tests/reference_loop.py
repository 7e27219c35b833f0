"""A plain per-run PyTorch training loop: the yardstick the vectorized engine must match."""

from __future__ import annotations

import torch
from torch import nn

from dlatoms.mlp.data import Dataset
from dlatoms.mlp.engine import Layout, NetworkSpec, TrainingSpec


class ReferenceMLP(nn.Module):
    def __init__(self, network: NetworkSpec, flat: torch.Tensor) -> None:
        super().__init__()
        layout = Layout(network.layer_shapes)
        self.activation = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu}[
            network.activation
        ]
        self.layers = nn.ModuleList()
        for (fan_in, fan_out), ws, bs in zip(
            layout.shapes, layout.weight_slices, layout.bias_slices, strict=True
        ):
            linear = nn.Linear(fan_in, fan_out)
            with torch.no_grad():
                # nn.Linear stores (out, in): the transpose of our (in, out) layout.
                linear.weight.copy_(flat[ws].view(fan_in, fan_out).T)
                linear.bias.copy_(flat[bs])
            self.layers.append(linear)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers[:-1]:
            x = self.activation(layer(x))
        return self.layers[-1](x)


def train_reference(
    network: NetworkSpec,
    training: TrainingSpec,
    flat: torch.Tensor,
    data: Dataset,
    indices: torch.Tensor,
    penalty: str = "none",
    strength: float = 0.0,
) -> tuple[ReferenceMLP, list[float]]:
    """Train one run eagerly; returns the model and its minibatch loss at each step."""
    model = ReferenceMLP(network, flat)
    optimizer = torch.optim.Adam(model.parameters(), lr=training.lr, betas=training.betas, eps=training.eps)
    x = torch.tensor(data.x_train)
    y = nn.functional.one_hot(torch.tensor(data.y_train), network.output_dim).float()
    losses = []
    for step in range(training.steps):
        rows = indices[step]
        outputs = model(x[rows])
        if training.loss == "mse":
            loss = nn.functional.mse_loss(outputs, y[rows])
        else:
            loss = nn.functional.cross_entropy(outputs, y[rows])
        losses.append(loss.item())
        if penalty == "l1":
            loss = loss + strength * sum(layer.weight.abs().mean() for layer in model.layers)
        elif penalty == "l2":
            loss = loss + strength * sum(layer.weight.square().mean() for layer in model.layers)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model, losses
