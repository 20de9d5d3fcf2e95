from pathlib import Path

import pytest

from medlearn.data.registry import REGISTRY, DatasetSource, download, file_md5, verify
from medlearn.errors import InputError


def test_checksum_verification_on_the_local_copy(shared_data: Path) -> None:
    local = shared_data / REGISTRY["breastmnist"].local
    # this copy was re-saved (1-D labels), so it must NOT pass as the official file
    assert not verify(local, REGISTRY["breastmnist"])
    same = DatasetSource("x", "file://", local.name, file_md5(local), "CC BY 4.0", "-")
    assert verify(local, same)


def test_unknown_dataset_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="unknown dataset"):
        download("not-a-dataset", tmp_path)
