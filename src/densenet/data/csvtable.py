"""A CSV file read whole, with the line each row starts on, so that every error can name its line."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from densenet.errors import DataError

__all__ = ["Table", "read_csv"]


@dataclass
class Table:
    """The rows of a CSV file as text, each with the line it starts on (the header is line 1)."""

    file: Path
    header: list[str]
    header_line: int
    rows: list[list[str]]
    lines: list[int]

    def error(self, line: int, message: str) -> DataError:
        return DataError(f"{self.file}, line {line}: {message}")

    def column(self, *names: str) -> int | None:
        """The index of the first of ``names`` in the header, or None."""
        return next((self.header.index(name) for name in names if name in self.header), None)

    def cells(self, col: int) -> list[str]:
        return [row[col].strip() for row in self.rows]

    def require_width(self, columns: Sequence[int]) -> None:
        """Every row has a field for each of ``columns`` (extra fields, such as a trailing comma, are fine)."""
        width = max(columns) + 1
        for row, line in zip(self.rows, self.lines):
            if len(row) < width:
                raise self.error(line, f"has {len(row)} fields but needs {width} to reach the "
                                       f"`{self.header[width - 1]}` column of the header; is a comma missing?")


def read_csv(file: Path) -> Table:
    """Read a whole CSV file, skipping blank lines; one DataError names the line of any problem."""
    try:
        data = file.read_bytes()
    except FileNotFoundError:
        raise DataError(f"label file {file} does not exist.") from None
    except OSError as exc:
        raise DataError(f"cannot read label file {file} ({exc.strerror}).") from None
    try:
        text = data.decode("utf-8-sig")  # Excel writes a byte-order mark; drop it
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise DataError(f"{file}, line {line}: byte 0x{data[exc.start]:02x} is not UTF-8; save the file as "
                        "UTF-8 (e.g. `iconv -f latin1 -t utf-8 OLD.csv > NEW.csv`).") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    rows: list[list[str]] = []
    lines: list[int] = []
    end = 0  # the last line of the previous record; a record starts on the line after it
    try:
        for row in reader:
            if "".join(row).strip():
                rows.append(row)
                lines.append(end + 1)
            end = reader.line_num
    except csv.Error as exc:
        raise DataError(f"{file}, line {reader.line_num}: not valid CSV ({exc}).") from None
    if not rows:
        raise DataError(f"{file} is empty; a label file starts with a header line such as `path,label`.")
    if len(rows) == 1:
        raise DataError(f"{file} has a header but no rows; add one line per picture.")
    return Table(file, [name.strip() for name in rows[0]], lines[0], rows[1:], lines[1:])
