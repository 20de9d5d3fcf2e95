"""Networks: a registry from names to constructors (MONAI's nets where they exist, ours otherwise)."""

from medlearn.nets.registry import build_network, list_networks, register_network

__all__ = ["build_network", "list_networks", "register_network"]
