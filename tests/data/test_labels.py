"""Label files and ImageNet's flat val folder: real CSV files and real tiny pictures in tmp_path."""

from __future__ import annotations

import hashlib
import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from densenet.data.catalogue import ImageList
from densenet.data.labels import NO_FINDING, read_imagenet_val, read_label_file
from densenet.errors import ConfigError, DataError

# ChestX-ray14's Data_Entry_2017.csv header and first rows, as NIH ships them (brackets split into columns,
# a trailing comma on every line).
CHESTXRAY_HEADER = ("Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,"
                    "OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y],")
CHESTXRAY_ROWS = [
    ("00000001_000.png", "Cardiomegaly", "0,1,57,M,PA,2682,2749,0.143,0.143,"),
    ("00000001_001.png", "Cardiomegaly|Emphysema", "1,1,58,M,PA,2894,2729,0.143,0.143,"),
    ("00000001_002.png", "Cardiomegaly|Effusion", "2,1,58,M,PA,2500,2048,0.168,0.168,"),
    ("00000002_000.png", "No Finding", "0,2,80,M,PA,2500,2048,0.171,0.171,"),
    ("00000003_000.png", "Hernia", "0,3,81,F,PA,2582,2991,0.143,0.143,"),
]


def picture(path: Path, mode: str = "RGB") -> None:
    """A real 3x2 picture, in the format its suffix says."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, (3, 2), color=len(path.name) % 256).save(path)


def pictures(root: Path, *rels: str) -> Path:
    for rel in rels:
        picture(root / rel)
    return root


def label_file(path: Path, *lines: str, encoding: str = "utf-8", newline: str = "\n") -> Path:
    path.write_bytes(newline.join(lines).encode(encoding) + newline.encode())
    return path


def both(root: Path, csv: Path) -> tuple[ImageList, ImageList]:
    return read_label_file(root, csv, "train"), read_label_file(root, csv, "test")


def rels(images: ImageList, root: Path) -> list[str]:
    return [p.relative_to(root).as_posix() for p in images.paths]


def assert_same(a: ImageList, b: ImageList) -> None:
    assert (a.paths, a.classes, a.labels.dtype) == (b.paths, b.classes, b.labels.dtype)
    assert torch.equal(a.labels, b.labels)


# --- layouts ---------------------------------------------------------------------------------------------


def test_single_label_rows_with_a_split_column(tmp_path):
    root = pictures(tmp_path / "img", "cat/1.png", "dog/2.jpg", "3.png", "4.bmp", "5.png")
    csv = label_file(tmp_path / "labels.csv", "path,label,split", "cat/1.png,cat,train", "dog/2.jpg,dog,train",
                     "3.png,cat,test", "4.bmp,bird,train", "5.png,dog,test")
    train, test = both(root, csv)
    assert train.classes == test.classes == ["bird", "cat", "dog"]
    assert train.paths == [root / "cat/1.png", root / "dog/2.jpg", root / "4.bmp"]
    assert all(p.is_absolute() for p in train.paths + test.paths)
    assert torch.equal(train.labels, torch.tensor([1, 2, 0]))
    assert rels(test, root) == ["3.png", "5.png"]
    assert torch.equal(test.labels, torch.tensor([1, 2]))
    assert not train.multilabel and train.name == str(csv)


def test_val_rows_are_the_test_split_when_no_row_says_test_and_unused_when_one_does(tmp_path):
    root = pictures(tmp_path / "img", "a.png", "b.png", "c.png", "d.png")
    csv = label_file(tmp_path / "l.csv", "path,label,split", "a.png,x,train", "b.png,y,TRAIN", "c.png,x,val",
                     "d.png,y,val")
    assert rels(read_label_file(root, csv, "test"), root) == ["c.png", "d.png"]
    label_file(csv, "path,label,split", "a.png,x,train", "b.png,y,train", "c.png,x,val", "d.png,y,test")
    train, test = both(root, csv)
    assert (rels(train, root), rels(test, root)) == (["a.png", "b.png"], ["d.png"])


def test_the_split_column_overrides_the_hash_split(tmp_path):
    names = [f"{i:03d}.png" for i in range(20)]
    root = pictures(tmp_path / "img", *names)
    hashed = label_file(tmp_path / "hashed.csv", "path,label", *(f"{n},c{i % 2}" for i, n in enumerate(names)))
    by_hash = rels(read_label_file(root, hashed, "test"), root)
    chosen = [n for n in names if n not in by_hash][:3]  # rows the hash puts in train
    marked = label_file(tmp_path / "marked.csv", "path,label,split",
                        *(f"{n},c{i % 2},{'test' if n in chosen else 'train'}" for i, n in enumerate(names)))
    train, test = both(root, marked)
    assert rels(test, root) == chosen
    assert rels(train, root) == [n for n in names if n not in chosen]


def test_the_hash_split_is_stable_disjoint_complete_and_stratified(tmp_path):
    rows = [(f"{cls}/{i}.png", cls) for cls, n in (("a", 10), ("b", 5), ("c", 2), ("d", 1)) for i in range(n)]
    root = pictures(tmp_path / "img", *(rel for rel, _ in rows))
    csv = label_file(tmp_path / "l.csv", "path,label", *(f"{rel},{cls}" for rel, cls in rows))
    train, test = both(root, csv)
    assert train.classes == test.classes == ["a", "b", "c", "d"]
    got_train, got_test = rels(train, root), rels(test, root)
    assert not set(got_train) & set(got_test)
    assert sorted(got_train + got_test) == sorted(rel for rel, _ in rows)
    test_counts = {cls: sum(rel.startswith(cls + "/") for rel in got_test) for cls in "abcd"}
    assert test_counts == {"a": 2, "b": 1, "c": 1, "d": 0}  # 20%, at least one of two or more, none of one
    for rel in got_test:  # within a class, the test rows are the ones with the largest md5 of their path
        cls = rel.split("/")[0]
        kept = [r for r in got_train if r.startswith(cls + "/")]
        assert all(hashlib.md5(rel.encode()).hexdigest() > hashlib.md5(r.encode()).hexdigest() for r in kept)
    shuffled = rows[:]
    random.Random(0).shuffle(shuffled)
    again = label_file(tmp_path / "shuffled.csv", "path,label", *(f"{rel},{cls}" for rel, cls in shuffled))
    assert sorted(rels(read_label_file(root, again, "test"), root)) == sorted(got_test)
    assert_same(read_label_file(root, csv, "test"), test)


def test_bar_separated_labels_and_no_finding_as_an_all_zero_row(tmp_path):
    root = pictures(tmp_path / "img", "1.png", "2.png", "3.png", "4.png")
    csv = label_file(tmp_path / "l.csv", "path,labels,split", "1.png,Mass|Effusion,train", "2.png,No Finding,train",
                     "3.png, Effusion ,test", "4.png,Mass|Mass,test")
    train, test = both(root, csv)
    assert train.multilabel and train.classes == test.classes == ["Effusion", "Mass"]
    assert torch.equal(train.labels, torch.tensor([[1.0, 1.0], [0.0, 0.0]]))
    assert torch.equal(test.labels, torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    assert train.labels.dtype == torch.float32 and NO_FINDING == "No Finding"


def test_chestxray14_data_entry_reads_as_it_is(tmp_path):
    root = pictures(tmp_path / "images", *(name for name, _, _ in CHESTXRAY_ROWS))
    csv = label_file(tmp_path / "Data_Entry_2017.csv", CHESTXRAY_HEADER,
                     *(f"{name},{labels},{rest}" for name, labels, rest in CHESTXRAY_ROWS), newline="\r\n")
    train, test = both(root, csv)
    assert rels(test, root) == ["00000002_000.png"]  # 20% of 5 rows, one group: the largest md5 of the path
    assert torch.equal(test.labels, torch.zeros(1, 4))  # "No Finding"
    assert train.classes == ["Cardiomegaly", "Effusion", "Emphysema", "Hernia"]
    assert rels(train, root) == ["00000001_000.png", "00000001_001.png", "00000001_002.png", "00000003_000.png"]
    assert torch.equal(train.labels, torch.tensor([[1.0, 0, 0, 0], [1, 0, 1, 0], [1, 1, 0, 0], [0, 0, 0, 1]]))


def binary_and_bar_files(tmp_path: Path, split: bool) -> tuple[Path, Path, Path]:
    """The same multi-label rows written as a `labels` column and as 0/1 columns."""
    rows = [("p/1.png", "A|C", "train"), ("p/2.png", NO_FINDING, "train"), ("p/3.png", "B", "train"),
            ("q/4.png", "B|A", "test"), ("q/5.png", "C", "train"), ("q/6.png", "A|B|C", "train"),
            ("7.png", "A", "val"), ("8.png", "B|C", "train"), ("9.png", NO_FINDING, "test"), ("10.png", "A", "train")]
    root = pictures(tmp_path / "img", *(rel for rel, _, _ in rows))

    def tail(value: str) -> str:
        return f",{value}" if split else ""

    bar, binary = ["path,labels" + tail("split")], ["path,A,B,C" + tail("split")]
    for rel, labels, where in rows:
        bar.append(f"{rel},{labels}{tail(where)}")
        binary.append(rel + "".join(f",{int(c in labels.split('|'))}" for c in "ABC") + tail(where))
    return root, label_file(tmp_path / "bar.csv", *bar), label_file(tmp_path / "binary.csv", *binary)


@pytest.mark.parametrize("split_column", [True, False])
def test_bar_and_binary_layouts_give_identical_image_lists(tmp_path, split_column):
    root, bar, binary = binary_and_bar_files(tmp_path, split_column)
    for split in ("train", "test"):
        a, b = read_label_file(root, bar, split), read_label_file(root, binary, split)
        assert_same(a, b)
        assert a.classes == ["A", "B", "C"] and a.multilabel
    if split_column:
        test = read_label_file(root, bar, "test")
        assert rels(test, root) == ["q/4.png", "9.png"]
        assert torch.equal(test.labels, torch.tensor([[1.0, 1.0, 0.0], [0.0, 0.0, 0.0]]))


def test_binary_columns_keep_their_order_and_may_sit_beside_a_split_column(tmp_path):
    root = pictures(tmp_path / "img", "1.png", "2.png", "3.png")
    csv = label_file(tmp_path / "l.csv", "zebra,path,split,apple", "1,1.png,train,0", "0,2.png,train,1.0",
                     "1.0,3.png,test,1")
    train, test = both(root, csv)
    assert train.classes == ["zebra", "apple"]
    assert torch.equal(train.labels, torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    assert torch.equal(test.labels, torch.tensor([[1.0, 1.0]]))


def test_a_byte_order_mark_quotes_blank_lines_and_crlf_are_read(tmp_path):
    root = pictures(tmp_path / "img", "a b.png", "c.png", "d.png")
    csv = tmp_path / "l.csv"
    csv.write_bytes(b'\xef\xbb\xbfpath,label,split\r\n"a b.png","Pleural, Thickening",train\r\n\r\n'
                    b"./c.png,x,train\r\nd.png,x,test\r\n")
    train, test = both(root, csv)
    assert rels(train, root) == ["a b.png", "c.png"] and train.classes == ["Pleural, Thickening", "x"]
    assert torch.equal(test.labels, torch.tensor([1]))


# --- errors: each names the file and the line ---------------------------------------------------------------

ERRORS = {
    "no path column": (["file,label", "a.png,x"], 1, "no `path` column; the header has file, label"),
    "no label column": (["path,split", "a.png,train"], 1, "no label column; the header has path, split"),
    "label and labels": (["path,label,labels", "a.png,x,x"], 1, "both `label` and `labels`"),
    "missing file": (["path,label", "a.png,x", "b.png,x", "gone.png,y", "sub/gone.png,y"], 4,
                     "gone.png is not a file under {root} (nor are 1 other listed paths)"),
    "a folder": (["path,label", "a.png,x", "sub,y"], 3, "sub is not a file under"),
    "empty label": (["path,label", "a.png,x", "b.png, "], 3, "the label is empty"),
    "empty path": (["path,label", "a.png,x", ",y"], 3, "the path is empty"),
    "only in test": (["path,label,split", "a.png,x,train", "b.png,zebra,test"], 3,
                     "class 'zebra' appears only in the test split"),
    "only in test, labels": (["path,labels,split", "a.png,x,train", "b.png,x|zebra,test"], 3,
                             "class 'zebra' appears only in the test split"),
    "only in test, binary": (["path,x,zebra,split", "a.png,1,0,train", "b.png,0,1,test"], 3,
                             "class 'zebra' appears only in the test split"),
    "duplicate": (["path,label", "a.png,x", "b.png,x", "./a.png,y"], 4, "a.png is listed twice, on lines 2 and 4"),
    "not 0/1": (["path,x,y", "a.png,1,0", "b.png,0,2"], 3, "column `y` holds '2', but a class column holds 0 or 1"),
    "empty 0/1": (["path,x,y", "a.png,1,", "b.png,0,1"], 2, "column `y` holds ''"),
    "parent": (["path,label", "a.png,x", "../x.png,y"], 3, "../x.png points outside the images folder"),
    "absolute": (["path,label", "/etc/passwd,y"], 2, "/etc/passwd points outside the images folder"),
    "bad split": (["path,label,split", "a.png,x,train", "b.png,x,holdout"], 3, "split is 'holdout'"),
    "short row": (["path,x,label", "a.png,1,x", "b.png"], 3, "has 1 fields but needs 3"),
    "empty token": (["path,labels", "a.png,x||y"], 2, "empty label in 'x||y'"),
    "no finding beside findings": (["path,labels", "a.png,No Finding|x"], 2, "says `No Finding` beside findings"),
    "repeated column": (["path,x,x", "a.png,1,1"], 1, "the header names 'x' more than once"),
    "line after blank lines": (["path,label", "", "a.png,x", "", "", "b.png,"], 6, "the label is empty"),
}


@pytest.mark.parametrize("case", ERRORS)
@pytest.mark.parametrize("split", ["train", "test"])
def test_bad_label_files_name_the_file_and_line(tmp_path, case, split):
    lines, line, message = ERRORS[case]
    root = pictures(tmp_path / "img", "a.png", "b.png", "c.png", "sub/d.png")
    csv = label_file(tmp_path / "labels.csv", *lines)
    with pytest.raises(DataError) as err:
        read_label_file(root, csv, split)
    assert str(err.value).startswith(f"{csv}, line {line}: ")
    assert message.format(root=root) in str(err.value)


def test_a_non_utf8_file_names_the_line_of_the_first_bad_byte(tmp_path):
    root = pictures(tmp_path / "img", "a.png", "b.png")
    csv = label_file(tmp_path / "l.csv", "path,label", "a.png,x", "b.png,caf\u00e9", encoding="latin-1")
    with pytest.raises(DataError, match=r"l\.csv, line 3: byte 0xe9 is not UTF-8; save the file as UTF-8"):
        read_label_file(root, csv, "train")


@pytest.mark.parametrize("content", [b"", b"\xef\xbb\xbf", b"\n \n"])
def test_an_empty_file_is_an_error(tmp_path, content):
    (tmp_path / "l.csv").write_bytes(content)
    with pytest.raises(DataError, match=r"l\.csv is empty; a label file starts with a header line"):
        read_label_file(tmp_path, tmp_path / "l.csv", "train")


def test_a_header_without_rows_a_split_without_rows_and_a_bad_split_argument(tmp_path):
    root = pictures(tmp_path / "img", "a.png")
    with pytest.raises(DataError, match="has a header but no rows"):
        read_label_file(root, label_file(tmp_path / "h.csv", "path,label"), "train")
    only_train = label_file(tmp_path / "t.csv", "path,label,split", "a.png,x,train")
    assert len(read_label_file(root, only_train, "train")) == 1
    with pytest.raises(DataError, match=r"t\.csv: no rows for the test split"):
        read_label_file(root, only_train, "test")
    with pytest.raises(ConfigError, match="split must be 'train' or 'test'"):
        read_label_file(root, only_train, "val")
    with pytest.raises(DataError, match="label file .*nope.csv does not exist"):
        read_label_file(root, tmp_path / "nope.csv", "train")
    with pytest.raises(DataError, match="images folder .*nothing does not exist"):
        read_label_file(tmp_path / "nothing", only_train, "train")


# --- ImageNet's flat val folder ------------------------------------------------------------------------------

WNIDS = ["n01440764", "n01443537", "n01751748"]


def test_imagenet_val_from_the_devkit_solution_file(tmp_path):
    val = pictures(tmp_path / "val", *(f"ILSVRC2012_val_0000000{i}.JPEG" for i in (1, 2, 3)))
    csv = label_file(tmp_path / "LOC_val_solution.csv", "ImageId,PredictionString",
                     "ILSVRC2012_val_00000003,n01751748 10 20 30 40 n01751748 5 6 7 8 ",
                     "ILSVRC2012_val_00000001,n01440764 1 2 3 4", "ILSVRC2012_val_00000002,n01751748 0 0 9 9")
    got = read_imagenet_val(val, csv, WNIDS)
    assert got.paths == [val / "ILSVRC2012_val_00000003.JPEG", val / "ILSVRC2012_val_00000001.JPEG",
                         val / "ILSVRC2012_val_00000002.JPEG"]
    assert torch.equal(got.labels, torch.tensor([2, 0, 2])) and got.classes == WNIDS


def test_imagenet_val_from_a_plain_path_label_file(tmp_path):
    val = pictures(tmp_path / "val", "a.JPEG", "b.jpg")
    got = read_imagenet_val(val, label_file(tmp_path / "v.csv", "path,label", "b.jpg,n01443537", "a.JPEG,n01440764"),
                            WNIDS)
    assert got.paths == [val / "b.jpg", val / "a.JPEG"] and torch.equal(got.labels, torch.tensor([1, 0]))


@pytest.mark.parametrize(("lines", "line", "message"), [
    (["ImageId,PredictionString", "ILSVRC2012_val_00000001,n09999999 1 2 3 4"], 2,
     "class 'n09999999' is not one of the 3 training classes (n01440764 ... n01751748)"),
    (["ImageId,PredictionString", "ILSVRC2012_val_00000001,n01440764 1 2 3 4", "ILSVRC2012_val_00000009,n01440764"],
     3, "ILSVRC2012_val_00000009.JPEG is not a file under"),
    (["ImageId,PredictionString", "ILSVRC2012_val_00000001, "], 2, "the label is empty"),
    (["path,label", "ILSVRC2012_val_00000001.JPEG,n01440764", "ILSVRC2012_val_00000001.JPEG,n01440764"], 3,
     "listed twice, on lines 2 and 3"),
    (["image,wnid", "ILSVRC2012_val_00000001.JPEG,n01440764"], 1,
     "the header has image, wnid; an ImageNet validation label file has `ImageId,PredictionString`"),
])
def test_bad_imagenet_val_files_name_the_file_and_line(tmp_path, lines, line, message):
    val = pictures(tmp_path / "val", "ILSVRC2012_val_00000001.JPEG")
    csv = label_file(tmp_path / "LOC_val_solution.csv", *lines)
    with pytest.raises(DataError) as err:
        read_imagenet_val(val, csv, WNIDS)
    assert str(err.value).startswith(f"{csv}, line {line}: ") and message in str(err.value)


def test_imagenet_val_needs_the_training_classes(tmp_path):
    with pytest.raises(ConfigError, match="needs the training classes"):
        read_imagenet_val(tmp_path, tmp_path / "x.csv", [])


# --- scale -------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_hundred_thousand_rows_in_a_few_folders(tmp_path):
    """The scale ImageNet and ChestX-ray14 have: one listing per folder, not one stat per row."""
    root, n = tmp_path / "img", 100_000
    rel_paths = [f"d{i % 10}/{i:06d}.png" for i in range(n)]
    for folder in {rel.split("/")[0] for rel in rel_paths}:
        (root / folder).mkdir(parents=True)
    for rel in rel_paths:  # empty files: existence is what is checked here, not decoding
        os.close(os.open(root / rel, os.O_CREAT | os.O_WRONLY))
    csv = label_file(tmp_path / "l.csv", "path,label", *(f"{rel},c{i % 100}" for i, rel in enumerate(rel_paths)))
    train, test = both(root, csv)
    assert (len(train), len(test)) == (80_000, 20_000) and len(train.classes) == 100
    assert np.bincount(test.labels.numpy()).tolist() == [200] * 100


def test_an_empty_labels_cell_and_a_renamed_no_finding_are_all_zero_rows(tmp_path):
    root = pictures(tmp_path / "img", "1.png", "2.png", "3.png", "4.png")
    csv = label_file(tmp_path / "l.csv", "path,labels,split", "1.png,Mass,train", "2.png,,train",
                     "3.png,Normal,train", "4.png,Mass,test")
    train = read_label_file(root, csv, "train", no_finding="Normal")
    assert train.classes == ["Mass"] and torch.equal(train.labels, torch.tensor([[1.0], [0.0], [0.0]]))
    bad = label_file(tmp_path / "bad.csv", "path,labels,split", "1.png,Mass,train", "4.png,Mass|Normal,test")
    with pytest.raises(DataError, match="says `Normal` beside findings"):
        read_label_file(root, bad, "train", no_finding="Normal")


def test_a_class_column_that_is_never_1_is_kept_for_the_trainer_to_warn_about(tmp_path):
    root = pictures(tmp_path / "img", "a.png", "b.png", "c.png")
    csv = label_file(tmp_path / "labels.csv", "path,x,zebra,split", "a.png,1,0,train", "b.png,0,0,train",
                     "c.png,1,0,test")
    train = read_label_file(root, csv, "train")
    assert train.classes == ["x", "zebra"] and torch.equal(train.labels, torch.tensor([[1.0, 0.0], [0.0, 0.0]]))
