import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from medlearn.evaluation.classification import classification_metrics  # noqa: E402
from medlearn.evaluation.plots import (  # noqa: E402
    plot_calibration,
    plot_confusion_matrix,
    plot_image_grid,
    plot_metric_bars,
    plot_roc,
    plot_training_curves,
)
from medlearn.evaluation.report import Report  # noqa: E402


def _lines(fig):
    return {line.get_label(): line for ax in fig.axes for line in ax.get_lines()}


def test_training_curves_from_sparse_lightning_csv(tmp_path):
    # Lightning CSVLogger: train and val metrics on different rows, blanks elsewhere
    csv = tmp_path / "metrics.csv"
    csv.write_text(
        "epoch,step,train_loss,val_loss,val_auc,lr-Adam\n"
        "0,9,0.9,,,0.001\n0,9,,0.8,0.6,\n1,19,0.7,,,0.001\n1,19,,0.65,0.7,\n2,29,0.5,,,0.001\n2,29,,0.6,0.8,\n"
    )
    fig = plot_training_curves(csv)
    lines = _lines(fig)
    assert set(lines) == {"train_loss", "val_loss", "val_auc"}
    np.testing.assert_allclose(lines["val_auc"].get_ydata(), [0.6, 0.7, 0.8])
    np.testing.assert_allclose(lines["train_loss"].get_xdata(), [0, 1, 2])
    loss_ax = lines["train_loss"].axes
    assert lines["val_loss"].axes is loss_ax and lines["val_auc"].axes is not loss_ax
    assert isinstance(plot_training_curves(pd.read_csv(csv)), Figure)


def test_roc_confusion_calibration_grid_bars_render(tmp_path):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 50)
    p = rng.dirichlet(np.ones(3), 50)
    roc = plot_roc(y, p, "multiclass", ["a", "b", "c"])
    assert sum("AUC" in k for k in _lines(roc)) == 3
    yb = np.array([0, 0, 1, 1])
    roc_b = plot_roc(yb, np.array([0.1, 0.2, 0.8, 0.9]), "binary", ["neg", "pos"])
    assert "pos (AUC 1.000)" in _lines(roc_b)
    ym = np.array([[1, 0], [0, np.nan], [1, 1], [0, 1]])
    plot_roc(ym, rng.uniform(size=(4, 2)), "multilabel", ["x", "y"])
    cm_fig = plot_confusion_matrix([[3, 1], [1, 3]], ["benign", "malignant"])
    texts = [t.get_text() for t in cm_fig.axes[0].texts]
    assert "3\n75%" in texts and "1\n25%" in texts
    plot_confusion_matrix(np.zeros((3, 2, 2), int), ["a", "b", "c"])
    cal = plot_calibration(y, p)
    assert "ECE" in cal.axes[0].get_title()
    m = classification_metrics(yb, np.array([0.1, 0.6, 0.8, 0.9]), "binary", n_boot=50)
    bars = plot_metric_bars(m, ["auc", "accuracy", "sensitivity"])
    assert [t.get_text() for t in bars.axes[0].get_yticklabels()] == ["auc", "accuracy", "sensitivity"]
    imgs = [rng.uniform(size=(8, 8)), (rng.uniform(size=(8, 8, 3)) * 255).astype(np.uint8), rng.uniform(size=(1, 8, 8))]
    grid = plot_image_grid(imgs, ["a", "b", "c"], overlays=[np.eye(8), None, np.ones((8, 8))], ncols=2)
    shown = [ax for ax in grid.axes if ax.images]
    assert len(shown) == 3 and len(shown[0].images) == 2 and len(shown[1].images) == 1
    r = Report("plots")
    for name, fig in [("roc", roc), ("cm", cm_fig), ("cal", cal), ("bars", bars), ("grid", grid)]:
        r.add_figure(fig, name)
    r.write(tmp_path / "report.html")
    assert len(list((tmp_path / "figures").glob("*.png"))) == 5
