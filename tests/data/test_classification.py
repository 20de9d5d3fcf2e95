from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medlearn.data.check import check_dataset
from medlearn.data.classification import load_classification_data
from medlearn.data.fingerprint import fingerprint_classification
from medlearn.errors import InputError


def test_medmnist_npz_keeps_official_splits(tiny_npz: Path) -> None:
    data = load_classification_data(tiny_npz)
    assert data.images.shape == (80, 1, 16, 16) and data.task == "binary"
    assert [int((data.splits == s).sum()) for s in ("train", "val", "test")] == [48, 16, 16]
    fp = fingerprint_classification(data)
    assert fp["class_counts"] == {"0": 40, "1": 40} and fp["imbalance_ratio"] == 1.0


def test_real_breastmnist_fingerprint(shared_data: Path) -> None:
    data = load_classification_data(shared_data / "medmnist_breast" / "breastmnist.npz")
    fp = fingerprint_classification(data)
    assert fp["n_images"] == 780 and fp["shape"] == [28, 28]
    assert fp["class_counts"] == {"0": 210, "1": 570}
    assert fp["imbalance_ratio"] == pytest.approx(570 / 210)


def test_csv_table_with_patients(tiny_csv: Path) -> None:
    data = load_classification_data(tiny_csv)
    assert data.label_names == ["normal", "tumour"] and data.patient_ids is not None
    assert data.images.shape == (40, 1, 16, 16)


def test_class_folders(tmp_path: Path) -> None:
    for cls in ("a", "b", "c"):
        (tmp_path / cls).mkdir()
        for i in range(3):
            Image.fromarray(np.full((8, 8), i * 10, np.uint8)).save(tmp_path / cls / f"{i}.png")
    data = load_classification_data(tmp_path)
    assert data.task == "multiclass" and data.label_names == ["a", "b", "c"]
    assert list(np.bincount(data.labels)) == [3, 3, 3]


def test_multilabel_csv_keeps_missing_labels(tmp_path: Path) -> None:
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "x.png")
    (tmp_path / "t.csv").write_text("image,effusion,nodule\nx.png,1,\nx.png,0,1\n")
    data = load_classification_data(tmp_path / "t.csv")
    assert data.task == "multilabel" and np.isnan(data.labels[0, 1]) and data.labels[1, 1] == 1


@pytest.mark.parametrize("table,problem", [
    ("img,label\na.png,0\n", "no 'image' column"),
    ("image,diagnosis\na.png,0\n", "label column(s) not found"),
    ("image,label\nmissing.png,0\n", "file not found"),
])
def test_bad_tables(tmp_path: Path, table: str, problem: str) -> None:
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "a.png")
    (tmp_path / "t.csv").write_text(table)
    with pytest.raises(InputError) as err:
        load_classification_data(tmp_path / "t.csv", label_columns=["label"] if "diagnosis" in table else None)
    assert problem in str(err.value)


def test_mixed_sizes_and_channels_name_the_file(tmp_path: Path) -> None:
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "a.png")
    Image.fromarray(np.zeros((9, 8), np.uint8)).save(tmp_path / "b.png")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "c.png")
    (tmp_path / "size.csv").write_text("image,label\na.png,0\nb.png,1\n")
    (tmp_path / "chan.csv").write_text("image,label\na.png,0\nc.png,1\n")
    with pytest.raises(InputError, match="b.png.*size"):
        load_classification_data(tmp_path / "size.csv")
    with pytest.raises(InputError, match="c.png.*channel"):
        load_classification_data(tmp_path / "chan.csv")
    resized = load_classification_data(tmp_path / "size.csv", resize=[8, 8])
    assert resized.images.shape == (2, 1, 8, 8)


def test_label_not_in_label_set(tmp_path: Path) -> None:
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "a.png")
    (tmp_path / "t.csv").write_text("image,label\na.png,benign\na.png,weird\n")
    with pytest.raises(InputError, match="row 3: label 'weird' is not in the label set"):
        load_classification_data(tmp_path / "t.csv", classes=["benign", "malignant"])


def test_npz_without_expected_keys(tmp_path: Path) -> None:
    np.savez(tmp_path / "x.npz", images=np.zeros((2, 4, 4)), labels=np.zeros(2))
    with pytest.raises(InputError, match="missing keys"):
        load_classification_data(tmp_path / "x.npz")


def test_check_reports_every_problem(tmp_path: Path) -> None:
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "a.png")
    (tmp_path / "broken.png").write_bytes(b"garbage")
    (tmp_path / "t.csv").write_text("image,label,split,patient_id\na.png,0,train,p1\nmissing.png,1,train,p2\n"
                                    "broken.png,1,test,p3\na.png,1,validation,p1\n")
    problems = check_dataset(tmp_path / "t.csv")
    text = "\n".join(str(p) for p in problems)
    assert "missing.png" in text and "broken.png" in text and "validation" in text
    assert all(p.severity == "error" for p in problems)


def test_check_finds_patient_leak(tmp_path: Path) -> None:
    for i in range(4):
        Image.fromarray(np.full((8, 8), i * 40, np.uint8)).save(tmp_path / f"{i}.png")
    (tmp_path / "t.csv").write_text("image,label,split,patient_id\n0.png,0,train,p1\n1.png,1,test,p1\n"
                                    "2.png,0,train,p2\n3.png,1,val,p3\n")
    problems = check_dataset(tmp_path / "t.csv")
    assert any("more than one split" in p.problem for p in problems)


def test_check_class_folders_reports_each_bad_file(tmp_path: Path) -> None:
    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / cls / "ok.png")
    (tmp_path / "a" / "bad.png").write_bytes(b"junk")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "b" / "rgb.png")
    text = "\n".join(str(p) for p in check_dataset(tmp_path))
    assert "bad.png" in text and "rgb.png" in text and "channel" in text


def test_data_check_warns_about_a_cohort_too_small_for_a_patient_split(tmp_path) -> None:
    """12 images of 6 patients: it trains (the split falls back to whole patients), and check says why it is noisy."""
    import numpy as np
    from PIL import Image

    from medlearn.data.check import check_dataset

    rows = ["image,label,patient_id"]
    for i in range(12):
        Image.fromarray(np.full((8, 8), 20 * i, np.uint8)).save(tmp_path / f"i{i}.png")
        rows.append(f"i{i}.png,{i % 2},p{i // 2 * 2 + i % 2}")
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    problems = check_dataset(tmp_path / "t.csv")
    warning = [p for p in problems if "patient(s) of class" in p.problem]
    assert warning and warning[0].severity == "warning" and "noisy" in warning[0].problem
