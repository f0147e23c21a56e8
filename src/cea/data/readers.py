"""Readers for the ReDSM5 layout and a generic JSONL/CSV layout.

Readers never crash on a bad row and never drop one silently: every problem becomes a
`DataIssue` naming the file, the row, the ids and the column. Fatal problems (a missing column,
a file that is not CSV) are errors; row problems are warnings, which `strict` turns into errors
(see `ensure_usable`). Messages carry ids and labels, not the sensitive text, unless
`show_text=True` asks for a short truncated excerpt.
"""

from __future__ import annotations

import csv
import difflib
import io
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from cea.data.schema import (
    ANNOTATIONS_FILE,
    ANY_CRITERION,
    POSTS_FILE,
    Annotation,
    DataIssue,
    Dataset,
    LoadResult,
    Post,
    Severity,
)
from cea.errors import DataError, MissingResourceError

# the bundled long-post profile: generated on read (deterministic), never a folder on disk
LONG_SAMPLE = "sample-long"
HARD_SAMPLE = "sample-hard"  # ReDSM5's difficulties (cea.data.sample_hard), generated on read
POST_COLUMNS = ("post_id", "text")
ANNOTATION_COLUMNS = ("post_id", "sentence_id", "sentence_text", "DSM5_symptom", "status")
EXCERPT_CHARS = 40
_WS = re.compile(r"\s+")


def normalize_ws(text: str) -> str:
    return _WS.sub(" ", text).strip()


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    flat = normalize_ws(text)
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


@dataclass
class _Collector:
    file: str
    show_text: bool
    issues: list[DataIssue] = field(default_factory=list)

    def add(
        self,
        code: str,
        message: str,
        *,
        severity: Severity = "warning",
        row: int | None = None,
        ids: dict[str, str] | None = None,
        column: str | None = None,
        value: str | None = None,
        text: str | None = None,
    ) -> None:
        self.issues.append(
            DataIssue(
                code=code,
                severity=severity,
                file=self.file,
                message=message,
                row=row,
                ids=tuple((ids or {}).items()),
                column=column,
                value=value,
                excerpt=excerpt(text) if (self.show_text and text is not None) else None,
            )
        )


def _decode(raw: bytes, col: _Collector) -> str:
    """UTF-8 (BOM allowed); bad bytes are reported with their line and replaced."""
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        col.add(
            "bad_encoding",
            f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
            "bad bytes were replaced",
            row=line,
        )
        return raw.decode("utf-8", errors="replace")


def _read_file(path: Path, col: _Collector) -> str | None:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        col.add("missing_file", "file not found", severity="error")
        return None
    except OSError as exc:
        col.add("unreadable_file", f"cannot read file ({exc.strerror})", severity="error")
        return None
    return _decode(raw, col)


def _csv_rows(
    text: str, required: tuple[str, ...], col: _Collector
) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield (start line, row) of a CSV text; report missing columns and malformed rows."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader)
    except StopIteration:
        col.add("empty_file", "file is empty (no header)", severity="error")
        return
    except csv.Error as exc:
        col.add("malformed_csv", f"header is not valid CSV ({exc})", severity="error", row=1)
        return
    header = [h.strip() for h in header]
    missing = [c for c in required if c not in header]
    for name in missing:
        guess = difflib.get_close_matches(name, header, n=1)
        hint = f" (found {guess[0]!r})" if guess else ""
        col.add(
            "missing_column",
            f"required column is missing{hint}",
            severity="error",
            row=1,
            column=name,
        )
    if missing:
        return
    line = reader.line_num
    while True:
        start = line + 1
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            col.add("malformed_csv", f"row is not valid CSV ({exc})", severity="error", row=start)
            return
        line = reader.line_num
        if not values or all(not v.strip() for v in values):
            continue
        if len(values) != len(header):
            col.add(
                "bad_row_width",
                f"row has {len(values)} fields, header has {len(header)}; row skipped",
                row=start,
            )
            continue
        yield start, dict(zip(header, values, strict=True))


def guess_label(label: str, known: tuple[str, ...]) -> str | None:
    """The criterion a misspelt label most likely means (None: no close one)."""
    guess = difflib.get_close_matches(label.upper().replace(" ", "_"), known, n=1, cutoff=0.6)
    return guess[0] if guess else None


def _label_issue(
    col: _Collector, label: str, known: tuple[str, ...], what: str, **kw: object
) -> str:
    """Report an unknown label; returns the criterion whose target it leaves unknown."""
    guess = guess_label(label, known)
    if guess:
        msg = f"unknown label {label!r} (did you mean {guess}?); {what} {guess} is masked"
    else:
        msg = f"unknown label {label!r}; {what} every criterion is masked"
    col.add("unknown_label", msg + " (set data.label_aliases to use it)", value=label, **kw)  # type: ignore[arg-type]
    return guess or ANY_CRITERION


def propose_aliases(issues: tuple[DataIssue, ...], known: tuple[str, ...]) -> dict[str, str]:
    """data.label_aliases that would fix the unknown labels seen (close matches only)."""
    out: dict[str, str] = {}
    for issue in issues:
        if issue.code == "unknown_label" and issue.value and issue.value not in out:
            guess = guess_label(issue.value, known)
            if guess:
                out[issue.value] = guess
    return out


def _aliased(label: str, aliases: Mapping[str, str] | None) -> str:
    return aliases.get(label, label) if aliases else label


def read_redsm5(
    folder: str | Path,
    criteria: tuple[str, ...],
    *,
    show_text: bool = False,
    aliases: Mapping[str, str] | None = None,
) -> LoadResult:
    """Read `redsm5_posts.csv` + `redsm5_annotations.csv` from `folder`."""
    root = Path(folder)
    posts_col = _Collector(str(root / POSTS_FILE), show_text)
    ann_col = _Collector(str(root / ANNOTATIONS_FILE), show_text)

    texts: dict[str, tuple[str, int]] = {}
    posts_text = _read_file(root / POSTS_FILE, posts_col)
    if posts_text is not None:
        for row, rec in _csv_rows(posts_text, POST_COLUMNS, posts_col):
            pid = rec["post_id"].strip()
            text = rec["text"]
            if not pid:
                posts_col.add(
                    "missing_id", "empty post_id; row not used", row=row, column="post_id"
                )
                continue
            if pid in texts:
                posts_col.add(
                    "duplicate_id",
                    f"post_id already used on line {texts[pid][1]}; this row not used",
                    row=row,
                    ids={"post_id": pid},
                    column="post_id",
                )
                continue
            if not text.strip():
                posts_col.add(
                    "empty_text",
                    "post text is empty; post not used",
                    row=row,
                    ids={"post_id": pid},
                    column="text",
                )
                texts[pid] = ("", row)
                continue
            texts[pid] = (text, row)

    annotations: list[Annotation] = []
    unknown: dict[str, set[str]] = {}  # post -> criteria an unusable row leaves unknown
    seen: dict[tuple[str, str, str], int] = {}
    ann_text = _read_file(root / ANNOTATIONS_FILE, ann_col)
    if ann_text is not None:
        for row, rec in _csv_rows(ann_text, ANNOTATION_COLUMNS, ann_col):
            pid = rec["post_id"].strip()
            sid = rec["sentence_id"].strip()
            ids = {"post_id": pid, "sentence_id": sid}
            label = _aliased(rec["DSM5_symptom"].strip(), aliases)
            status_raw = rec["status"].strip()
            sentence = rec["sentence_text"]
            if not pid or not sid:
                ann_col.add(
                    "missing_id", "empty post_id or sentence_id; row not used", row=row, ids=ids
                )
                continue
            if pid not in texts:
                ann_col.add(
                    "orphan_annotation",
                    f"post_id not found in {POSTS_FILE}; row not used",
                    row=row,
                    ids=ids,
                    column="post_id",
                )
                continue
            if label not in criteria:
                masked = _label_issue(
                    ann_col, label, criteria, "row not used; this post's target for",
                    row=row, ids=ids, column="DSM5_symptom",
                )  # fmt: skip
                unknown.setdefault(pid, set()).add(masked)
                continue
            if status_raw not in ("0", "1"):
                unknown.setdefault(pid, set()).add(label)
                ann_col.add(
                    "bad_status",
                    f"status must be 0 or 1, got {status_raw[:10]!r}; row not used "
                    f"(this post's target for {label} is masked)",
                    row=row,
                    ids=ids,
                    column="status",
                    value=status_raw[:10],
                )
                continue
            if not sentence.strip():
                ann_col.add(
                    "empty_text",
                    "sentence_text is empty; row not used",
                    row=row,
                    ids=ids,
                    column="sentence_text",
                )
                continue
            key = (pid, sid, label)
            if key in seen:
                ann_col.add(
                    "duplicate_annotation",
                    f"same post_id, sentence_id and label as line {seen[key]}; row not used",
                    row=row,
                    ids=ids,
                    value=label,
                )
                continue
            seen[key] = row
            post_text = texts[pid][0]
            if post_text and normalize_ws(sentence) not in normalize_ws(post_text):
                ann_col.add(
                    "sentence_not_found",
                    "annotated sentence does not occur verbatim in its post; "
                    "kept as a sentence-level example",
                    row=row,
                    ids=ids,
                    column="sentence_text",
                    text=sentence,
                )
            annotations.append(Annotation(pid, sid, sentence, label, int(status_raw), row))

    positives: dict[str, set[str]] = {}
    for ann in annotations:
        if ann.status == 1:
            positives.setdefault(ann.post_id, set()).add(ann.criterion)
    posts = tuple(
        Post(
            pid,
            text,
            pid,
            frozenset(positives.get(pid, ())),
            row,
            frozenset(unknown.get(pid, set()) - positives.get(pid, set())),
        )
        for pid, (text, row) in texts.items()
        if text.strip()
    )
    dataset = Dataset(str(root), "redsm5", criteria, posts, tuple(annotations))
    return LoadResult(dataset, tuple(posts_col.issues + ann_col.issues))


def _split_labels(raw: object) -> list[str] | None:
    if isinstance(raw, list) and all(isinstance(x, str) for x in raw):
        return [x.strip() for x in raw if x.strip()]
    if isinstance(raw, str):
        return [x.strip() for x in re.split(r"[;|]", raw) if x.strip()]
    return None


def _invalid_unicode(rec: object) -> str | None:
    """The name of a field whose string (or list of strings) cannot be encoded as UTF-8 (a
    lone surrogate from a JSON escape); None when every field is valid text."""
    if not isinstance(rec, dict):
        return None
    for key, value in rec.items():
        items = value if isinstance(value, list) else [value]
        for item in [key, *items]:
            if isinstance(item, str):
                try:
                    item.encode("utf-8")
                except UnicodeEncodeError:
                    return str(key).encode("utf-8", "backslashreplace").decode("ascii")
    return None


def read_generic(
    path: str | Path,
    criteria: tuple[str, ...],
    *,
    show_text: bool = False,
    aliases: Mapping[str, str] | None = None,
) -> LoadResult:
    """JSONL or CSV with `id`, `text`, `labels` (list, or ';'-separated) and optional `group`."""
    file = Path(path)
    col = _Collector(str(file), show_text)
    records: list[tuple[int, dict[str, object]]] = []
    text = _read_file(file, col)
    if text is not None:
        if file.suffix.lower() == ".csv":
            records = [(r, dict(rec)) for r, rec in _csv_rows(text, ("id", "text", "labels"), col)]
        else:
            # lines end at "\n" only (JSON Lines): U+2028, U+2029 and U+0085 are valid
            # characters inside a text, not line breaks (str.splitlines would split there)
            for lineno, line in enumerate(text.split("\n"), start=1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as exc:
                    col.add(
                        "malformed_line",
                        f"not valid JSON ({exc.msg})",
                        severity="error",
                        row=lineno,
                    )
                    continue
                except RecursionError:
                    col.add(
                        "malformed_line",
                        "JSON nested too deeply to read",
                        severity="error",
                        row=lineno,
                    )
                    continue
                bad_field = _invalid_unicode(rec)
                if bad_field is not None:
                    col.add(
                        "bad_encoding",
                        f"field {bad_field!r} holds a lone surrogate (a \\ud800-\\udfff "
                        "escape without its pair): not valid Unicode",
                        severity="error",
                        row=lineno,
                        column=bad_field,
                    )
                    continue
                if not isinstance(rec, dict):
                    col.add(
                        "malformed_line",
                        "a line must hold a JSON object",
                        severity="error",
                        row=lineno,
                    )
                    continue
                missing = [k for k in ("id", "text", "labels") if k not in rec]
                if missing:
                    col.add(
                        "missing_column",
                        f"missing field(s) {', '.join(missing)}",
                        severity="error",
                        row=lineno,
                        column=missing[0],
                    )
                    continue
                records.append((lineno, rec))
    seen: dict[str, int] = {}
    posts: list[Post] = []
    for row, rec in records:
        rid = str(rec.get("id", "")).strip()
        ids = {"id": rid}
        body = rec.get("text")
        if not rid:
            col.add("missing_id", "empty id; record not used", row=row, column="id")
            continue
        if rid in seen:
            col.add(
                "duplicate_id",
                f"id already used on line {seen[rid]}; record not used",
                row=row,
                ids=ids,
            )
            continue
        seen[rid] = row
        if not isinstance(body, str) or not body.strip():
            col.add("empty_text", "text is empty; record not used", row=row, ids=ids, column="text")
            continue
        labels = _split_labels(rec.get("labels"))
        if labels is None:
            col.add(
                "bad_labels",
                "labels must be a list of strings or a ';'-separated string",
                row=row,
                ids=ids,
                column="labels",
            )
            continue
        labels = [_aliased(lab, aliases) for lab in labels]
        unknown = [lab for lab in labels if lab not in criteria]
        masked = {
            _label_issue(col, lab, criteria, "label dropped; this record's target for",
                         row=row, ids=ids, column="labels")
            for lab in unknown
        }  # fmt: skip
        good = frozenset(lab for lab in labels if lab in criteria)
        group = str(rec.get("group") or rid).strip()
        posts.append(Post(rid, body, group, good, row, frozenset(masked - good)))
    dataset = Dataset(str(file), "generic", criteria, tuple(posts), ())
    return LoadResult(dataset, tuple(col.issues))


def sample_data_path() -> Path:
    """The packaged synthetic sample (ReDSM5 layout)."""
    return Path(str(resources.files("cea.resources") / "sample"))


def resolve_data_path(path: str) -> Path:
    return sample_data_path() if path == "sample" else Path(path)


def load_dataset(
    fmt: str,
    path: str,
    criteria: tuple[str, ...],
    *,
    show_text: bool = False,
    aliases: Mapping[str, str] | None = None,
) -> LoadResult:
    if path in (LONG_SAMPLE, HARD_SAMPLE) and fmt == "redsm5":
        return _long_sample(criteria, show_text=show_text, aliases=aliases, name=path)
    where = resolve_data_path(path)
    if not where.exists():
        raise MissingResourceError(
            f"dataset {where} not found",
            hint="give data.path=FOLDER (redsm5) or a .jsonl/.csv file",
        )
    if fmt == "redsm5":
        if not where.is_dir():
            raise DataError(
                f"{where}: the redsm5 format needs a folder with {POSTS_FILE} and {ANNOTATIONS_FILE}"
            )
        return read_redsm5(where, criteria, show_text=show_text, aliases=aliases)
    if where.is_dir():
        raise DataError(f"{where}: the generic format needs a .jsonl or .csv file, not a folder")
    return read_generic(where, criteria, show_text=show_text, aliases=aliases)


def _long_sample(
    criteria: tuple[str, ...],
    *,
    show_text: bool,
    aliases: Mapping[str, str] | None,
    name: str = LONG_SAMPLE,
) -> LoadResult:
    """`sample-long`: 300 synthetic posts with real post lengths (`cea data sample --profile
    long --posts 300 --seed 11`); `sample-hard`: `cea data sample --profile hard --seed 11`
    (1,484 posts). Written to a private temporary folder, read like any ReDSM5 folder, the
    folder removed. The same bytes every time: the data hash, and so split files and
    `--compare`, hold across runs and machines."""
    import dataclasses
    import tempfile

    from cea.data.sample import write_sample
    from cea.data.sample_hard import HARD_POSTS

    with tempfile.TemporaryDirectory(prefix=f"cea-{name}-") as tmp:
        if name == HARD_SAMPLE:
            write_sample(Path(tmp), HARD_POSTS, 11, "hard")
        else:
            write_sample(Path(tmp), 300, 11, "long")
        result = read_redsm5(Path(tmp), criteria, show_text=show_text, aliases=aliases)
    return dataclasses.replace(result, dataset=dataclasses.replace(result.dataset, source=name))


def ensure_usable(result: LoadResult, *, strict: bool) -> None:
    """Raise DataError (exit 5) on errors, or on any warning when strict."""
    blocking = result.issues if strict else result.errors
    if blocking:
        first = blocking[0]
        more = f" (+{len(blocking) - 1} more)" if len(blocking) > 1 else ""
        raise DataError(
            f"{first.format()}{more}",
            hint="run `cea data validate` for the full list"
            + ("" if strict else "; warnings are allowed without --strict"),
        )
    if not result.dataset.posts:
        raise DataError(
            f"{result.dataset.source}: no usable posts",
            hint="the file is empty or every row was refused; see `cea data validate`",
        )
    annotations = result.dataset.annotations
    if annotations and not any(a.status == 1 for a in annotations):
        raise DataError(
            f"{result.dataset.source}: all {len(annotations)} annotations have status 0 "
            "(clinician-marked absence): no criterion is met in any post, nothing to learn",
            hint="check the status column (1 = evidence, 0 = absence) of the annotations file",
        )
    if not result.dataset.annotations and not any(p.labels for p in result.dataset.posts):
        dropped = sum(1 for i in result.issues if "label" in i.code.lower())
        raise DataError(
            f"{result.dataset.source}: no usable annotations "
            f"or labels ({len(result.dataset.posts)} posts; {dropped} label problems): "
            "nothing to learn",
            hint="check the label names against the criteria (see `cea data validate`)",
        )
