"""Mixed training data: the merged data.yaml and image lists hold real and synthetic images in the ratio."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import yaml

from brightkitchen.datasets import data_yaml
from training.mix import build_mix, mix_counts


def _folder(root: Path, prefix: str, train: int, val: int) -> Path:
    (root / "images" / "train").mkdir(parents=True)
    (root / "images" / "val").mkdir(parents=True)
    for split, n in (("train", train), ("val", val)):
        for i in range(n):
            (root / "images" / split / f"{prefix}{i:03d}.jpg").write_bytes(b"\xff\xd8" + bytes([i]))
    (root / "data.yaml").write_text(data_yaml())
    return root


def _names(lines: str) -> Counter[str]:
    return Counter(Path(p).name[:5] for p in lines.splitlines())


@pytest.mark.parametrize(
    ("n_synth", "n_real", "ratio", "expected"),
    [
        (100, 10, 0.3, (100, 43)),  # real scarce: repeated up to 30 %
        (100, 200, 0.5, (200, 200)),  # real plentiful: synthetic repeated
        (100, 60, 0.5, (100, 100)),
        (100, 10, 0.0, (100, 0)),
        (100, 10, 1.0, (0, 10)),
        (0, 10, 0.3, (0, 10)),
    ],
)
def test_mix_counts(n_synth: int, n_real: int, ratio: float, expected: tuple[int, int]) -> None:
    assert mix_counts(n_synth, n_real, ratio) == expected


def test_build_mix_writes_lists_in_the_ratio(tmp_path: Path) -> None:
    synth_a = _folder(tmp_path / "synth-a", "syn_a", 30, 3)
    synth_b = _folder(tmp_path / "synth-b", "syn_b", 10, 1)
    real = _folder(tmp_path / "real", "real_", 7, 2)
    mix = build_mix([synth_a, synth_b], [real], 0.2, tmp_path / "mix", seed=3)
    data = yaml.safe_load((tmp_path / "mix" / "data.yaml").read_text())
    assert data["names"][0] == "board_red" and Path(data["train"]).is_absolute()
    train = Path(data["train"]).read_text()
    assert _names(train) == {"syn_a": 30, "syn_b": 10, "real_": 10}  # 10 / 50 = 0.2
    real_lines = Counter(p for p in train.splitlines() if "real_" in p)
    assert len(real_lines) == 7 and sorted(real_lines.values()) == [1, 1, 1, 1, 2, 2, 2]  # each once, 3 twice
    assert all(Path(p).is_file() for p in train.splitlines())
    assert _names(Path(data["val"]).read_text()) == {"syn_a": 3, "syn_b": 1, "real_": 2}
    assert (mix["real"]["used"], mix["synthetic"]["used"], mix["count"]) == (10, 40, 50)
    again = build_mix([synth_a, synth_b], [real], 0.2, tmp_path / "again", seed=3)
    assert (tmp_path / "again" / "train.txt").read_text() == train and again["fingerprint"] == mix[
        "fingerprint"
    ]


def test_plentiful_real_repeats_synthetic_and_no_ratio_keeps_everything_once(tmp_path: Path) -> None:
    synth = _folder(tmp_path / "synth", "syn_a", 10, 4)
    real = _folder(tmp_path / "real", "real_", 20, 2)
    build_mix([synth], [real], 0.5, tmp_path / "half", seed=0)
    assert _names((tmp_path / "half" / "train.txt").read_text()) == {"syn_a": 20, "real_": 20}
    build_mix([synth], [real], None, tmp_path / "all", seed=0)
    assert _names((tmp_path / "all" / "train.txt").read_text()) == {"syn_a": 10, "real_": 20}


def test_a_folder_with_other_classes_is_refused(tmp_path: Path) -> None:
    synth = _folder(tmp_path / "synth", "syn_a", 4, 1)
    other = _folder(tmp_path / "other", "real_", 4, 1)
    (other / "data.yaml").write_text(yaml.safe_dump({"names": {0: "cat", 1: "dog"}}))
    with pytest.raises(ValueError, match=r"other/data.yaml: names are \['cat', 'dog'\]"):
        build_mix([synth], [other], 0.5, tmp_path / "mix")
