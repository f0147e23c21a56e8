"""The figures of an evaluation (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cea.evaluate.metrics import N_BINS


def write_plots(
    folder: Path,
    crit: np.ndarray,
    target: np.ndarray,
    prob: np.ndarray,
    labels: tuple[str, ...],
    thresholds: np.ndarray,
) -> list[str]:
    """Confusion matrices at the run's thresholds, precision-recall curves per criterion and
    a reliability diagram, written as PNGs into `folder`; the file names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import precision_recall_curve

    keep = ~np.isnan(target)  # unknown (masked) labels are left out, as in the metrics
    crit, target, prob = crit[keep], target[keep], prob[keep]
    written = []
    n = len(labels)
    cols = 5
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 2.8 * rows), squeeze=False)
    for i, lab in enumerate(labels):
        ax = axes[i // cols][i % cols]
        m = crit == i
        y, p = target[m] >= 0.5, prob[m] >= thresholds[i]
        cm = np.array([[np.sum(~y & ~p), np.sum(~y & p)], [np.sum(y & ~p), np.sum(y & p)]])
        ax.imshow(cm, cmap="Blues")
        for (r, c), v in np.ndenumerate(cm):
            dark = v > cm.max() / 2
            ax.text(c, r, str(v), ha="center", va="center", color="white" if dark else "black")
        ax.set_title(lab, fontsize=8)
        ax.set_xticks([0, 1], ["pred 0", "pred 1"], fontsize=7)
        ax.set_yticks([0, 1], ["true 0", "true 1"], fontsize=7)
    for j in range(n, rows * cols):
        axes[j // cols][j % cols].axis("off")
    fig.suptitle("Confusion matrices at the run's thresholds")
    fig.tight_layout()
    fig.savefig(folder / "confusion_matrices.png", dpi=110)
    plt.close(fig)
    written.append("confusion_matrices.png")

    fig, ax = plt.subplots(figsize=(6, 5))
    for i, lab in enumerate(labels):
        m = crit == i
        y = target[m] >= 0.5
        if 0 < y.sum() < len(y):
            pr, rc, _ = precision_recall_curve(y, prob[m])
            ax.plot(rc, pr, label=lab, lw=1)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title("Precision-recall per criterion")
    ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(folder / "precision_recall.png", dpi=110)
    plt.close(fig)
    written.append("precision_recall.png")

    fig, ax = plt.subplots(figsize=(5, 5))
    edges = np.linspace(0, 1, N_BINS + 1)
    idx = np.clip(np.digitize(prob, edges[1:-1]), 0, N_BINS - 1)
    conf = [prob[idx == b].mean() if (idx == b).any() else np.nan for b in range(N_BINS)]
    acc = [target[idx == b].mean() if (idx == b).any() else np.nan for b in range(N_BINS)]
    ax.plot([0, 1], [0, 1], "--", color="grey", lw=1)
    ax.plot(conf, acc, "o-")
    ax.set_xlabel("predicted probability")
    ax.set_ylabel("observed frequency")
    ax.set_title("Reliability (all criteria)")
    fig.tight_layout()
    fig.savefig(folder / "reliability.png", dpi=110)
    plt.close(fig)
    written.append("reliability.png")
    return written
