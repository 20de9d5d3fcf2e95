import pytest
import torch

from medlearn.errors import InputError
from medlearn.nets import build_network, list_networks
from medlearn.nets.classification import EnsembleClassifier
from medlearn.nets.init import initialise


@pytest.mark.parametrize("name,size", [("mlp", (8, 8)), ("smallcnn", (16, 16)), ("resnet18", (28, 28)),
                                       ("resnet10", (12, 12, 12)), ("densenet121", (64, 64)),
                                       ("efficientnet-b0", (32, 32))])
def test_networks_give_logits_and_embeddings(name: str, size: tuple[int, ...]) -> None:
    net = build_network(name, spatial_dims=len(size), in_channels=2, num_outputs=3, input_size=size)
    x = torch.randn(2, 2, *size)
    assert net(x).shape == (2, 3) and net.embed(x).shape == (2, net.embed_dim)


def test_registry_rejects_unknown_names() -> None:
    assert {"resnet18", "densenet121", "mlp", "smallcnn"} <= set(list_networks())
    with pytest.raises(InputError, match="unknown network"):
        build_network("alexnet")


def test_init_schemes_change_weight_scale() -> None:
    torch.manual_seed(0)
    layer = torch.nn.Linear(1000, 1000)
    initialise(layer, "kaiming")
    kaiming_std = layer.weight.std().item()
    initialise(layer, "xavier")
    xavier_std = layer.weight.std().item()
    assert kaiming_std == pytest.approx((2 / 1000) ** 0.5, rel=0.05)
    assert xavier_std == pytest.approx((2 / 2000) ** 0.5, rel=0.05)


def test_ensemble_averages_probabilities() -> None:
    members = [build_network("smallcnn", spatial_dims=2, in_channels=1, num_outputs=3, widths=(4, 8)) for _ in range(2)]
    x = torch.randn(3, 1, 8, 8)
    ens = EnsembleClassifier(members).eval()
    mean_softmax = (members[0](x).softmax(1) + members[1](x).softmax(1)) / 2
    torch.testing.assert_close(ens(x).softmax(1), mean_softmax)
    sig = EnsembleClassifier(members, link="sigmoid").eval()
    mean_sigmoid = (members[0](x).sigmoid() + members[1](x).sigmoid()) / 2
    torch.testing.assert_close(sig(x).sigmoid(), mean_sigmoid)
    with pytest.raises(ValueError, match="link"):
        EnsembleClassifier(members, link="mean")
    assert ens.embed(x).shape == (3, 16)
