"""The MNIST data behind the embedded model: the pinned wheel, its hash check, and the splits."""

import numpy as np
import pytest

from digits.mnist import (
    WHEEL_FILE,
    WHEEL_SHA256,
    DataFileError,
    check_wheel,
    load_split,
    load_split_uint8,
    parse_split,
    pick_pairs,
    sha256_of,
    to_native,
)

# The published MNIST label counts (LeCun et al.): an exact answer no parsing slip can reproduce by chance.
TEST_LABEL_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
TRAIN_LABEL_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


def test_the_wheel_is_the_pinned_file():
    assert sha256_of(WHEEL_FILE) == WHEEL_SHA256
    assert check_wheel(WHEEL_FILE) == WHEEL_FILE


def test_a_changed_or_missing_wheel_is_refused(tmp_path):
    changed = tmp_path / WHEEL_FILE.name
    data = bytearray(WHEEL_FILE.read_bytes())
    data[len(data) // 2] ^= 1  # one flipped bit
    changed.write_bytes(bytes(data))
    with pytest.raises(DataFileError, match="expected the pinned"):
        check_wheel(changed)
    with pytest.raises(DataFileError, match="bash dev.sh setup"):
        load_split_uint8("held_out", tmp_path / "absent.whl")


def test_the_parsed_cache_holds_exactly_the_csv_rows():
    table = parse_split("held_out", WHEEL_FILE)
    pixels, labels = load_split_uint8("held_out")
    assert np.array_equal(table[:, 0], labels) and np.array_equal(table[:, 1:].reshape(-1, 28, 28), pixels)


@pytest.mark.parametrize("split, counts", [("held_out", TEST_LABEL_COUNTS), ("train", TRAIN_LABEL_COUNTS)])
def test_splits_have_mnist_label_counts_and_pixel_range(split, counts):
    pixels, labels = load_split_uint8(split)
    assert pixels.shape == (sum(counts), 28, 28) and pixels.dtype == np.uint8
    assert np.bincount(labels).tolist() == counts
    assert pixels.max() == 255 and pixels.min() == 0
    assert np.median(pixels) == 0  # bright strokes on a black background


def test_model_images_are_padded_with_background_and_keep_the_digit():
    images, labels = load_split("held_out")
    assert images.shape == (10_000, 1, 32, 32)
    border = images.clone()
    border[..., 2:30, 2:30] = float("nan")
    assert border.nan_to_num(-1.0).eq(-1.0).all()
    pixels, _ = load_split_uint8("held_out")
    np.testing.assert_allclose(((to_native(images[:5])[:, 0] + 1) * 127.5).numpy(), pixels[:5], atol=1e-3)


def test_pairs_show_different_digits_and_depend_only_on_the_seed():
    _, labels = load_split_uint8("held_out")
    pairs = pick_pairs(labels, 50, seed=1)
    assert pairs == pick_pairs(labels, 50, seed=1) != pick_pairs(labels, 50, seed=2)
    assert len(set(pairs)) == 50 and all(labels[i] != labels[j] for i, j in pairs)
