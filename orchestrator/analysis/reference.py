"""Published (ReLU count, accuracy %) points to overlay on a sweep's plot.

Source: /work/shared/notes/senet-method.md, "Published results to compare against". SENet is
Kundu et al., ICLR 2023 (arXiv 2301.09254), as transcribed by later papers; SNL is Cho et al.,
ICML 2022. The papers give ReLU counts in thousands (24.6K), stored here as counts, and report
*test* accuracy, so they compare with a sweep's test_acc more strictly than with its val_acc.
"""

from __future__ import annotations

# name -> {method: [(relu_count, accuracy %), ...]}
REFERENCES: dict[str, dict[str, list[tuple[int, float]]]] = {
    "cifar100-resnet18": {
        "SENet": [(24_600, 70.59), (49_600, 75.28)],
        "SNL": [(12_900, 66.53), (25_000, 70.05), (49_400, 73.75), (99_900, 75.94)],
    },
    "cifar100-wrn22_8": {
        "SENet": [(150_000, 78.32)],
    },
    "cifar10-resnet18": {
        "SENet": [(82_000, 93.05), (150_000, 94.91)],
    },
    "tinyimagenet-resnet18": {
        "SENet": [(142_000, 58.9), (298_000, 64.96)],
    },
}
