"""Weight initialisation schemes selectable from the plan.

Xavier/Glorot (Glorot & Bengio 2010) suits tanh/sigmoid nets; Kaiming/He (He et al. 2015) suits ReLU.
"""

from __future__ import annotations

from torch import nn

INITS = ("kaiming", "xavier", "default")


def initialise(module: nn.Module, scheme: str = "kaiming") -> nn.Module:
    """Re-initialise conv and linear weights of ``module`` in place (biases to zero, norms to 1/0)."""
    if scheme == "default":
        return module
    if scheme not in INITS:
        raise ValueError(f"init scheme must be one of {INITS}, got {scheme!r}")
    for m in module.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.ConvTranspose3d, nn.Linear)):
            if scheme == "kaiming":
                nn.init.kaiming_normal_(m.weight, mode="fan_out" if not isinstance(m, nn.Linear) else "fan_in",
                                        nonlinearity="relu")
            else:
                nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.GroupNorm, nn.InstanceNorm2d)):
            if getattr(m, "weight", None) is not None:
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
    return module
