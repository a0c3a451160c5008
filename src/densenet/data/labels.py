"""Label files: CSV tables that name each picture's class or classes, and ImageNet's flat validation folder.

A label file is UTF-8 CSV with a header (a byte-order mark is accepted). Its layout is told apart by the
header; ChestX-ray14's ``Data_Entry_2017.csv`` reads as it is:

- ``path,label``: one class name per row (single-label).
- ``path,labels``: class names separated by ``|`` (multi-label); an empty cell, or the cell ``No Finding``
  (``no_finding=`` names another), means none of the classes, an all-zero row. ChestX-ray14's ``Image Index``
  and ``Finding Labels`` read as ``path`` and ``labels``; other columns are ignored in these two layouts.
- ``path,<class>,<class>,...``: one 0/1 column per class (multi-label); every named column other than
  ``path`` and ``split`` is a class.

Paths are relative to the images folder. An optional ``split`` column (``train``/``val``/``test``) chooses
each row's split; without it, rows are split 80/20 by a hash of their path, as image folders are.
"""

from __future__ import annotations

import hashlib
import os
from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from densenet.data.catalogue import ImageList
from densenet.data.csvtable import Table, read_csv
from densenet.data.images import TEST_FRACTION
from densenet.errors import ConfigError, DataError

__all__ = ["NO_FINDING", "read_imagenet_val", "read_label_file"]

NO_FINDING = "No Finding"  # a `labels` cell meaning "none of the classes" (ChestX-ray14's healthy pictures)
PATH_COLUMNS = ("path", "Image Index")
LABEL_COLUMN = "label"
LABELS_COLUMNS = ("labels", "Finding Labels")
SPLIT_COLUMN = "split"
SPLIT_VALUES = ("train", "val", "test")
BINARY_VALUES = {"0": 0.0, "1": 1.0, "0.0": 0.0, "1.0": 1.0}
EXPECTED = ("`path` (or `Image Index`) and one of `label`, `labels` (or `Finding Labels`) "
            "or one 0/1 column per class")


@dataclass
class _Layout:
    """Which columns of a label file hold what."""

    kind: str  # "label" (single-label), "labels" (|-separated) or "binary" (one 0/1 column per class)
    path: int
    targets: list[int]
    split: int | None


def _layout(table: Table) -> _Layout:
    """Tell the layout from the header."""
    named = [name for name in table.header if name]
    twice = sorted({name for name in named if named.count(name) > 1})
    if twice:
        raise table.error(table.header_line, f"the header names {', '.join(map(repr, twice))} more than once.")
    path = table.column(*PATH_COLUMNS)
    label, labels, split = table.column(LABEL_COLUMN), table.column(*LABELS_COLUMNS), table.column(SPLIT_COLUMN)
    if path is None:
        raise table.error(table.header_line, f"no `path` column; the header has {', '.join(named) or 'no names'}, "
                                             f"and a label file needs {EXPECTED}.")
    if label is not None and labels is not None:
        raise table.error(table.header_line, f"both `{table.header[label]}` and `{table.header[labels]}` columns; "
                                             "keep one (`label` for one class per picture, `labels` for several).")
    if label is not None or labels is not None:
        kind, targets = ("label", [label]) if label is not None else ("labels", [labels])
    else:
        kind, targets = "binary", [i for i, name in enumerate(table.header) if name and i not in (path, split)]
        if not targets:
            raise table.error(table.header_line, f"no label column; the header has {', '.join(named)}, "
                                                 f"and a label file needs {EXPECTED}.")
    layout = _Layout(kind, path, targets, split)
    table.require_width([path, *targets] + ([split] if split is not None else []))
    return layout


def _relative_paths(table: Table, values: list[str], root: Path) -> list[str]:
    """Normalized relative paths ("./a//b.png" -> "a/b.png"); empty, escaping and repeated ones are errors."""
    seen: dict[str, int] = {}
    paths: list[str] = []
    for value, line in zip(values, table.lines):
        parts = [part for part in value.split("/") if part not in ("", ".")]  # as PurePosixPath, 10x faster
        if not parts:
            raise table.error(line, "the path is empty; every row names one picture.")
        if value.startswith("/") or ".." in parts:
            raise table.error(line, f"{value} points outside the images folder {root}; write paths relative to it, "
                                    "without a leading `/` or `..`.")
        rel = "/".join(parts)
        if rel in seen:
            raise table.error(line, f"{rel} is listed twice, on lines {seen[rel]} and {line}; keep one row per "
                                    "picture.")
        seen[rel] = line
        paths.append(rel)
    return paths


def _check_files(table: Table, root: Path, rels: list[str]) -> None:
    """Every path is a file under ``root``: one directory listing per folder rather than one stat per row."""
    by_folder: dict[str, list[int]] = defaultdict(list)
    for i, rel in enumerate(rels):
        by_folder[rel.rpartition("/")[0]].append(i)
    missing: list[int] = []
    for folder, rows in by_folder.items():
        try:
            with os.scandir(root / folder) as entries:
                files = {entry.name for entry in entries if entry.is_file()}
        except (FileNotFoundError, NotADirectoryError):
            files = set()
        except OSError as exc:
            raise DataError(f"cannot list {root / folder} ({exc.strerror}).") from None
        missing += [i for i in rows if rels[i].rpartition("/")[2] not in files]
    if missing:
        first = min(missing)
        more = f" (nor are {len(missing) - 1:,} other listed paths)" if len(missing) > 1 else ""
        raise table.error(table.lines[first], f"{rels[first]} is not a file under {root}{more}; paths are "
                                              "relative to the images folder (--data-dir).")


def _label_sets(table: Table, col: int, no_finding: str = NO_FINDING) -> list[frozenset[str]]:
    """The classes of each row of a `|`-separated column; an empty cell or ``no_finding`` alone is the empty set."""
    sets: list[frozenset[str]] = []
    for cell, line in zip(table.cells(col), table.lines):
        if not cell.strip():
            sets.append(frozenset())
            continue
        tokens = [token.strip() for token in cell.split("|")]
        if "" in tokens:
            raise table.error(line, f"empty label in {cell!r}; separate class names with `|`, and leave the cell "
                                    f"empty (or write `{no_finding}`) for a picture that shows none of the classes.")
        if no_finding in tokens and len(tokens) > 1:
            raise table.error(line, f"{cell!r} says `{no_finding}` beside findings; write either the findings or "
                                    f"`{no_finding}` alone.")
        sets.append(frozenset(tokens) - {no_finding})
    return sets


def _binary_rows(table: Table, cols: list[int]) -> np.ndarray:
    """The (N, C) float32 0/1 matrix of one-column-per-class data; the first bad cell (by line) is an error."""
    out = np.empty((len(table.rows), len(cols)), dtype=np.float32)
    bad: list[tuple[int, int]] = []  # (row, column) of each column's first bad cell
    for j, col in enumerate(cols):
        cells = [row[col] for row in table.rows]
        value = {cell: BINARY_VALUES.get(cell.strip()) for cell in set(cells)}  # few distinct cells: look up once
        if None in value.values():
            bad.append((next(i for i, cell in enumerate(cells) if value[cell] is None), col))
        else:
            out[:, j] = [value[cell] for cell in cells]
    if bad:
        i, col = min(bad)
        raise table.error(table.lines[i], f"column `{table.header[col]}` holds {table.rows[i][col].strip()!r}, but a "
                                          "class column holds 0 or 1 (every column other than path and split is a "
                                          "class).")
    return out


def _hash_split(rels: list[str], groups: Sequence[object]) -> list[str]:
    """A stable 80/20 split: within each group, rank rows by md5 of the path; the last 20% are test.

    A group (a class, for single-label data) with two or more rows always gets at least one test row.
    """
    members: dict[object, list[int]] = defaultdict(list)
    for i, group in enumerate(groups):
        members[group].append(i)
    splits = ["train"] * len(rels)
    for rows in members.values():
        ranked = sorted(rows, key=lambda i: (hashlib.md5(rels[i].encode()).hexdigest(), rels[i]))
        n_test = max(1, round(len(ranked) * TEST_FRACTION)) if len(ranked) >= 2 else 0
        for i in ranked[len(ranked) - n_test :]:
            splits[i] = "test"
    return splits


def _column_splits(table: Table, col: int) -> list[str]:
    """"train", "test" or "" (unused) per row: `test` rows are the test split, or `val` rows when none says test."""
    values = [cell.lower() for cell in table.cells(col)]
    for value, line in zip(values, table.lines):
        if value not in SPLIT_VALUES:
            raise table.error(line, f"split is {value!r}; write train, val or test.")
    test = "test" if "test" in values else "val"
    return ["train" if value == "train" else "test" if value == test else "" for value in values]


def _class_names(table: Table, names: Sequence[Collection[str]], splits: list[str]) -> list[str]:
    """Sorted names seen in the train split; a class seen only in the test split is an error."""
    classes = set().union(*(n for n, s in zip(names, splits) if s == "train"))
    for row_names, split, line in zip(names, splits, table.lines):
        if split == "test" and not classes.issuperset(row_names):
            raise table.error(line, f"class {sorted(set(row_names) - classes)[0]!r} appears only in the test split; "
                                    "every class needs training rows: add some, or drop the class.")
    return sorted(classes)


def _binary_classes(table: Table, layout: _Layout, matrix: np.ndarray, splits: list[str]) -> list[str]:
    """The class columns, in order. A class with a 1 only in test rows is an error; a column that is never 1 is
    kept (the trainer warns that it cannot be learnt, and its AUROC is reported as undefined)."""
    split = np.array(splits)
    in_train = matrix[split == "train"].any(axis=0)
    for j in np.flatnonzero(~in_train):
        name = table.header[layout.targets[j]]
        positive = np.flatnonzero((split == "test") & (matrix[:, j] == 1))
        if len(positive):
            raise table.error(table.lines[positive[0]], f"class {name!r} appears only in the test split; every "
                                                        "class needs training rows: add some, or drop the class.")
    return [table.header[col] for col in layout.targets]


def _raw_targets(table: Table, layout: _Layout,
                 no_finding: str = NO_FINDING) -> list[str] | list[frozenset[str]] | np.ndarray:
    """Each row's class name ("label"), set of class names ("labels") or 0/1 row ("binary"), checked."""
    if layout.kind == "labels":
        return _label_sets(table, layout.targets[0], no_finding)
    if layout.kind == "binary":
        return _binary_rows(table, layout.targets)
    names = table.cells(layout.targets[0])
    for name, line in zip(names, table.lines):
        if not name:
            raise table.error(line, "the label is empty; every row needs a class name.")
    return names


def _encode(table: Table, layout: _Layout, raw: list | np.ndarray,
            splits: list[str]) -> tuple[list[str], torch.Tensor]:
    """The class names and the targets of every row: int64 (N,) for "label", float32 (N, C) otherwise.

    Rows outside both splits (``val`` beside ``test``) may name classes the train split lacks; they get -1.
    """
    if layout.kind == "binary":
        return _binary_classes(table, layout, raw, splits), torch.from_numpy(raw)
    if layout.kind == "label":
        classes = _class_names(table, [(name,) for name in raw], splits)
        index = {name: i for i, name in enumerate(classes)}
        return classes, torch.tensor([index.get(name, -1) for name in raw], dtype=torch.int64)
    classes = _class_names(table, raw, splits)
    index = {name: i for i, name in enumerate(classes)}
    hits = [(i, index[name]) for i, names in enumerate(raw) for name in names if name in index]
    matrix = np.zeros((len(raw), len(classes)), dtype=np.float32)
    if hits:
        matrix[tuple(np.array(hits).T)] = 1.0
    return classes, torch.from_numpy(matrix)


def _images_root(images_dir: str | Path) -> Path:
    root = Path(images_dir).expanduser().absolute()
    if not root.is_dir():
        raise DataError(f"images folder {root} does not exist.")
    return root


def read_label_file(images_dir: str | Path, labels_csv: str | Path, split: str,
                    no_finding: str = NO_FINDING) -> ImageList:
    """One split of the pictures a label file lists, with their targets (see the module docstring for layouts).

    With a ``split`` column, the train split is the rows marked ``train`` and the test split is the rows marked
    ``test``, or those marked ``val`` when no row says ``test`` (``val`` rows are then unused). Without one,
    each class's rows are split 80/20 by an md5 of their path (the same rows always land in the same split,
    and a class with two or more rows gets a test row); multi-label rows are split 80/20 as one group.

    The classes are the sorted names seen in the train split (for 0/1 columns: the columns, in order), the
    same for both splits. The whole file is checked on either call, so a bad file fails before training.

    Args:
        images_dir: the folder the paths are relative to.
        labels_csv: the label file.
        split: "train" or "test".
        no_finding: The ``labels`` cell meaning none of the classes (an empty cell means it too).

    Returns:
        The split's pictures in file order; labels int64 (N,) for ``label``, float32 (N, C) otherwise.

    Raises:
        ConfigError: ``split`` is not "train" or "test".
        DataError: naming the file and line: a missing column, a path that is empty, outside ``images_dir``,
            repeated or not a file, an empty label, a 0/1 column with another value, a class seen only in
            the test split, an empty file, a file that is not UTF-8, or a split with no rows.
    """
    if split not in ("train", "test"):
        raise ConfigError(f"split must be 'train' or 'test', got {split!r}")
    root = _images_root(images_dir)
    table = read_csv(Path(labels_csv).expanduser())
    layout = _layout(table)
    rels = _relative_paths(table, table.cells(layout.path), root)
    raw = _raw_targets(table, layout, no_finding)
    if layout.split is not None:
        splits = _column_splits(table, layout.split)
    else:  # stratified by class for single-label rows; multi-label rows form one group
        splits = _hash_split(rels, raw if layout.kind == "label" else [None] * len(rels))
    _check_files(table, root, rels)
    classes, targets = _encode(table, layout, raw, splits)
    chosen = [i for i, s in enumerate(splits) if s == split]
    if not chosen:
        raise DataError(f"{table.file}: no rows for the {split} split; mark some rows `{split}` in the split "
                        "column, or drop the column to split by hash.")
    return ImageList([root / rels[i] for i in chosen], targets[chosen], classes, str(table.file))


def read_imagenet_val(val_dir: str | Path, solution_csv: str | Path, classes: Sequence[str]) -> ImageList:
    """ImageNet's flat validation folder, labelled by the devkit's ``LOC_val_solution.csv`` or a plain CSV.

    The header tells the two apart. ``ImageId,PredictionString`` (the devkit's file) names
    ``val_dir/<ImageId>.JPEG``; its class is the first word of the prediction string, a wnid such as
    ``n01751748``. ``path,label`` names files relative to ``val_dir`` and their class.

    Args:
        val_dir: the folder of validation pictures.
        solution_csv: the label file.
        classes: the training classes (wnids, as the train folder's class folders name them).

    Returns:
        Every listed picture in file order, with int64 labels indexing ``classes``.

    Raises:
        ConfigError: ``classes`` is empty.
        DataError: naming the file and line: an unknown header, a class not in ``classes``, an empty label,
            or a path that is empty, outside ``val_dir``, repeated or not a file.
    """
    if not classes:
        raise ConfigError("read_imagenet_val needs the training classes (the wnids of train/<wnid>/).")
    root = _images_root(val_dir)
    table = read_csv(Path(solution_csv).expanduser())
    image_id, prediction = table.column("ImageId"), table.column("PredictionString")
    path, label = table.column("path"), table.column(LABEL_COLUMN)
    if image_id is not None and prediction is not None:
        table.require_width([image_id, prediction])
        values = [f"{name}.JPEG" if name else "" for name in table.cells(image_id)]
        names = [(cell.split() or [""])[0] for cell in table.cells(prediction)]
    elif path is not None and label is not None:
        table.require_width([path, label])
        values, names = table.cells(path), table.cells(label)
    else:
        raise table.error(table.header_line, f"the header has {', '.join(n for n in table.header if n)}; an ImageNet "
                                             "validation label file has `ImageId,PredictionString` (the devkit's "
                                             "LOC_val_solution.csv) or `path,label`.")
    rels = _relative_paths(table, values, root)
    index = {name: i for i, name in enumerate(classes)}
    for name, line in zip(names, table.lines):
        if not name:
            raise table.error(line, "the label is empty; every row needs a class (a wnid such as n01440764).")
        if name not in index:
            raise table.error(line, f"class {name!r} is not one of the {len(classes)} training classes "
                                    f"({classes[0]} ... {classes[-1]}); is this the validation set of the same "
                                    "collection?")
    _check_files(table, root, rels)
    labels = torch.tensor([index[name] for name in names], dtype=torch.int64)
    return ImageList([root / rel for rel in rels], labels, list(classes), str(table.file))
