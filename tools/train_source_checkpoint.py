"""Train the pretrained source CNN of Part III and write ``utils/assets/source_cnn.pt``.

    .venv/bin/python -m tools.train_source_checkpoint

``SmallCNN(num_classes=26)`` is trained on the generated letters of
``utils.data.load_glyph_splits()`` (8,320 training images, seed 0) for EPOCHS epochs with Adam;
the script prints the validation and test accuracy, the runtime and the SHA-256 of the file.
Copy that SHA-256 into ``SOURCE_CHECKPOINT_SHA256`` in ``utils/models.py``: ``load_pretrained``
refuses any other file.  On the 2-core reference machine the whole run takes about 40 s
(data generation included).  Training is seeded; the same machine and torch build reproduce
the same bytes, another CPU may differ in the last float bits (then record the new checksum).
"""
from __future__ import annotations

import time

import torch

from utils.data import load_glyph_splits
from utils.models import (CHECKPOINT_PATH, SOURCE_CHECKPOINT_SHA256, SOURCE_NUM_CLASSES, SmallCNN,
                          evaluate, save_checkpoint, train)

EPOCHS = 8
SEED = 0


def main() -> int:
    start = time.perf_counter()
    splits = load_glyph_splits(seed=SEED)
    torch.manual_seed(SEED)
    model = SmallCNN(num_classes=SOURCE_NUM_CLASSES)
    train(model, splits.train, splits.val, epochs=EPOCHS, seed=SEED, progress=False)
    for name, (X, y) in (("val", splits.val), ("test", splits.test)):
        print(f"{name} accuracy: {evaluate(model, X, y).accuracy:.4f}")
    digest = save_checkpoint(model, CHECKPOINT_PATH)
    size_kb = CHECKPOINT_PATH.stat().st_size / 1024
    print(f"wrote utils/assets/{CHECKPOINT_PATH.name} ({size_kb:.0f} kB) in {time.perf_counter() - start:.1f} s")
    print(f"SHA-256: {digest}")
    if digest != SOURCE_CHECKPOINT_SHA256:
        print("this differs from SOURCE_CHECKPOINT_SHA256 in utils/models.py: update it there")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
