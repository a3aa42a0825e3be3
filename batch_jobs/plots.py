"""PNG figures of a facet model, for `dressvision evaluate --plot DIR`: one confusion matrix per
facet and split (scikit-learn's `ConfusionMatrixDisplay`, from the evaluation document's counts)
and the training curves from the version's `history.json` (train and test loss, test macro F1
per facet, per epoch).

matplotlib runs on its Agg backend (files only, no display needed: servers, CI, Batch).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def confusion_plots(document: Mapping, directory: Path) -> list[Path]:
    """`confusion_<split>_<facet>.png` for every split and facet of an evaluation document
    (`{"splits": {split: {facet: {"per_class", "confusion"}}}}`); returns the files written."""
    from sklearn.metrics import ConfusionMatrixDisplay

    plt = _pyplot()
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for split, facets in document["splits"].items():
        for facet, report in facets.items():
            labels = list(report["per_class"])
            matrix = np.asarray(report["confusion"], dtype=int).reshape(len(labels), len(labels))
            size = max(4.0, 0.6 * len(labels) + 2)
            fig, ax = plt.subplots(figsize=(size, size))
            display = ConfusionMatrixDisplay(matrix, display_labels=labels)
            display.plot(ax=ax, cmap="Blues", colorbar=False, xticks_rotation=45)
            ax.set_title(f"{facet}, {split} split (macro F1 {report['macro_f1']:.2f})")
            fig.tight_layout()
            path = directory / f"confusion_{split}_{facet}.png"
            fig.savefig(path, dpi=100)
            plt.close(fig)
            written.append(path)
    return written


def training_curves(history: Sequence[Mapping], directory: Path) -> Path | None:
    """`training_curves.png`: loss per epoch (train, and test when recorded) and test macro
    F1 per facet. None when the history is empty (a model saved before histories existed)."""
    if not history:
        return None
    plt = _pyplot()
    directory.mkdir(parents=True, exist_ok=True)
    epochs = [entry["epoch"] for entry in history]
    with_f1 = [entry for entry in history if entry.get("test_macro_f1")]
    fig, axes = plt.subplots(1, 2 if with_f1 else 1, figsize=(11 if with_f1 else 6, 4))
    loss_ax = axes[0] if with_f1 else axes
    loss_ax.plot(epochs, [entry["loss"] for entry in history], label="train")
    tested = [entry for entry in history if "test_loss" in entry]
    if tested:
        loss_ax.plot([e["epoch"] for e in tested], [e["test_loss"] for e in tested], label="test")
    loss_ax.set(xlabel="epoch", ylabel="loss", title="loss")
    loss_ax.legend()
    if with_f1:
        for facet in with_f1[0]["test_macro_f1"]:
            axes[1].plot(
                [e["epoch"] for e in with_f1],
                [e["test_macro_f1"].get(facet, np.nan) for e in with_f1],
                label=facet,
            )
        axes[1].set(xlabel="epoch", ylabel="macro F1", title="test macro F1", ylim=(0, 1))
        axes[1].legend()
    from matplotlib.ticker import MaxNLocator

    for ax in np.atleast_1d(axes):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
    fig.tight_layout()
    path = directory / "training_curves.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_plots(document: Mapping, history: Sequence[Mapping], directory: Path) -> list[Path]:
    """Every figure of a model in `directory`: confusion matrices, then training curves."""
    written = confusion_plots(document, directory)
    curves = training_curves(history, directory)
    return [*written, curves] if curves is not None else written
