import torch

from medlearn.tasks.classify.plan import AugmentSection
from medlearn.transforms.batch import augment_images, random_erase


def test_levels_and_determinism() -> None:
    x = torch.randn(16, 1, 20, 20)
    assert augment_images(x, AugmentSection(level="none"), torch.Generator()) is x
    cfg = AugmentSection(level="heavy", elastic=True)
    a = augment_images(x, cfg, torch.Generator().manual_seed(1))
    b = augment_images(x, cfg, torch.Generator().manual_seed(1))
    c = augment_images(x, cfg, torch.Generator().manual_seed(2))
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, c)
    assert not torch.equal(a, x)


def test_flip_only_preserves_intensities() -> None:
    x = torch.arange(2 * 1 * 4 * 4, dtype=torch.float32).view(2, 1, 4, 4)
    cfg = AugmentSection(level="light", rotate_degrees=0, scale=0, translate=0)
    y = augment_images(x, cfg, torch.Generator().manual_seed(0))
    for i in range(2):
        assert sorted(y[i].flatten().tolist()) == sorted(x[i].flatten().tolist())


def test_3d_and_erasing() -> None:
    x = torch.ones(4, 1, 8, 8, 8)
    y = augment_images(x, AugmentSection(level="heavy", elastic=True), torch.Generator().manual_seed(0))
    assert y.shape == x.shape
    erased = random_erase(torch.ones(3, 1, 12, 12), torch.Generator().manual_seed(0), p=1.0)
    assert all((erased[i] == 0).any() for i in range(3))
