"""`cea data validate|describe|split|sample`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from cea.cli._common import JsonOpt, QuietOpt, check_out, console, emit_json, info, set_mode

app = typer.Typer(
    help="Validate, describe and split datasets; write the synthetic sample.", no_args_is_help=True
)

PathArg = Annotated[
    str, typer.Argument(help="Dataset: a ReDSM5 folder, a .jsonl/.csv file, or 'sample'.")
]
FormatOpt = Annotated[
    str | None, typer.Option("--format", "-f", help="redsm5 | generic (default: by path).")
]
CriteriaOpt = Annotated[
    Path | None, typer.Option("--criteria", help="YAML file id -> description (default: DSM-5).")
]
StrictOpt = Annotated[bool, typer.Option("--strict", help="Treat warnings as errors (exit 5).")]
SeedOpt = Annotated[int, typer.Option("--seed", min=0, max=2**32 - 1, help="Split seed.")]
ForceOpt = Annotated[bool, typer.Option("--force", help="Replace what --out names.")]


def _format_for(path: str, fmt: str | None) -> str:
    from cea.errors import UsageError

    if fmt is not None:
        if fmt not in ("redsm5", "generic"):
            raise UsageError(f"unknown --format {fmt!r}", hint="use redsm5 or generic")
        return fmt
    from cea.config import infer_format

    return infer_format(path)


def _load(path: str, fmt: str | None, criteria: Path | None, show_text: bool = False):  # type: ignore[no-untyped-def]
    from cea.data.criteria import load_criteria
    from cea.data.readers import load_dataset

    crit = tuple(load_criteria(criteria))
    return load_dataset(_format_for(path, fmt), path, crit, show_text=show_text)


@app.command("validate")
def validate(
    path: PathArg = "sample",
    fmt: FormatOpt = None,
    criteria: CriteriaOpt = None,
    strict: StrictOpt = False,
    show_text: Annotated[
        bool, typer.Option("--show-text", help="Add a short truncated text excerpt to messages.")
    ] = False,
    limit: Annotated[
        int, typer.Option("--limit", min=0, help="Problems listed one by one (0: all).")
    ] = 20,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Check a dataset: a summary by kind of problem, then each problem with file, row, ids
    and column. Exit 5 when it has errors (any problem with --strict) or nothing usable."""
    from rich.table import Table

    from cea.data.readers import ensure_usable, propose_aliases
    from cea.errors import DataError

    mode = set_mode(json_out, quiet)
    result = _load(path, fmt, criteria, show_text)
    try:
        ensure_usable(result, strict=strict)
        failure: DataError | None = None
    except DataError as exc:
        failure = exc
    kinds: dict[str, list[Any]] = {}
    for issue in result.issues:
        kinds.setdefault(issue.code, []).append(issue)
    summary = [
        {
            "code": code,
            "severity": items[0].severity,
            "count": len(items),
            "first_rows": [i.row for i in items[:3] if i.row is not None],
        }
        for code, items in sorted(kinds.items(), key=lambda kv: -len(kv[1]))
    ]
    aliases = propose_aliases(result.issues, result.dataset.criteria)
    if mode.json:
        emit_json(
            {
                "source": result.dataset.source,
                "ok": failure is None,
                "strict": strict,
                "posts": len(result.dataset.posts),
                "annotations": len(result.dataset.annotations),
                "errors": len(result.errors),
                "warnings": len(result.warnings),
                "summary": summary,
                "problem": failure.message if failure else None,
                "proposed_label_aliases": aliases,
                "issues": [i.to_dict() for i in result.issues],
            }
        )
    else:
        if summary and not mode.quiet:  # --quiet: the verdict line only
            table = Table(title="problems by kind")
            for col in ("kind", "severity", "count", "first rows"):
                table.add_column(col)
            for row in summary:
                table.add_row(
                    row["code"],
                    row["severity"],
                    str(row["count"]),
                    ", ".join(str(r) for r in row["first_rows"]),
                )
            console.print(table)
        shown = result.issues if limit == 0 else result.issues[:limit]
        for issue in [] if mode.quiet else shown:
            style = "red" if issue.severity == "error" else "yellow"
            console.print(f"[{style}]{issue.severity}[/] {escape(issue.format())}", soft_wrap=True)
        if len(shown) < len(result.issues) and not mode.quiet:
            console.print(f"... {len(result.issues) - len(shown)} more (--limit 0 lists all)")
        if aliases and not mode.quiet:
            console.print(
                "proposed fix for the misspelt labels (config, or --set per key):\n"
                + "data:\n  label_aliases:\n"
                + "".join(f"    {json.dumps(k)}: {v}\n" for k, v in sorted(aliases.items())),
                highlight=False,
                markup=False,
            )
        verdict = "[red]FAILED[/]" if failure else "[green]OK[/]"
        console.print(
            f"{verdict} {result.dataset.source}: {len(result.dataset.posts)} posts, "
            f"{len(result.dataset.annotations)} annotations, {len(result.errors)} errors, "
            f"{len(result.warnings)} warnings",
            markup=True,
        )
    if failure is not None:
        raise failure


@app.command("describe")
def describe(
    path: PathArg = "sample",
    fmt: FormatOpt = None,
    criteria: CriteriaOpt = None,
    seed: SeedOpt = 13,
    split_file: Annotated[
        Path | None, typer.Option("--split-file", help="Use a saved split.")
    ] = None,
    backbone: Annotated[
        str | None, typer.Option("--backbone", help="Also report truncation for this tokenizer.")
    ] = None,
    max_length: Annotated[int, typer.Option("--max-length", help="Max tokens per input.")] = 128,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Label counts per split, lengths, and a check that no post is in two splits."""
    from cea.config import SplitConfig
    from cea.data.describe import describe as describe_dataset
    from cea.data.readers import ensure_usable
    from cea.data.splits import load_split, make_split

    mode = set_mode(json_out, quiet)
    result = _load(path, fmt, criteria)
    ensure_usable(result, strict=False)
    ds = result.dataset
    split = (
        load_split(split_file, ds)
        if split_file
        else make_split(ds, SplitConfig().model_dump(), seed)
    )
    desc = describe_dataset(ds, split)
    trunc = None
    if backbone:
        from cea.data.truncation import token_lengths, truncation_stats
        from cea.model.build import load_tokenizer

        tok = load_tokenizer(backbone)
        trunc = truncation_stats(token_lengths(tok, [p.text for p in ds.posts]), max_length)
    if mode.json:
        out = desc.to_dict()
        if trunc is not None:
            out["truncation"] = trunc.to_dict()
        emit_json(out)
        return
    names = list(desc.label_counts)
    table = Table(title=f"{desc.source} ({desc.format}): posts meeting each criterion per split")
    table.add_column("criterion")
    for name in names:
        table.add_column(f"{name} ({desc.split_posts.get(name, 0)})", justify="right")
    for lab in desc.criteria:
        table.add_row(lab, *(str(desc.label_counts[n][lab]) for n in names))
    table.add_row("(symptom-free)", *(str(desc.symptom_free[n]) for n in names), style="dim")
    console.print(table)
    console.print(
        f"{desc.posts} posts in {desc.groups} groups, {desc.annotations} annotations; "
        f"words per post: mean {desc.words_mean}, max {desc.words_max}; "
        f"posts in two splits: {len(desc.overlap)}"
    )
    if trunc is not None:
        console.print(
            f"truncation at {max_length} tokens: {trunc.truncated}/{trunc.examples} posts "
            f"({trunc.truncated_share:.1%}) longer; mean {trunc.mean_tokens}, "
            f"p95 {trunc.p95_tokens}, max {trunc.max_tokens} tokens"
        )


@app.command("split")
def split(
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the split JSON.")],
    path: PathArg = "sample",
    fmt: FormatOpt = None,
    criteria: CriteriaOpt = None,
    seed: SeedOpt = 13,
    train: Annotated[float, typer.Option(help="Train fraction.")] = 0.7,
    validation: Annotated[float, typer.Option(help="Validation fraction.")] = 0.15,
    test: Annotated[float, typer.Option(help="Test fraction.")] = 0.15,
    strict: StrictOpt = False,
    force: ForceOpt = False,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Grouped, stratified, seeded split saved with its hashes (an existing --out file only
    with --force)."""
    from pydantic import ValidationError

    from cea.config import SplitConfig
    from cea.data.readers import ensure_usable
    from cea.data.splits import make_split, save_split
    from cea.errors import UsageError

    mode = set_mode(json_out, quiet)
    check_out(out, force=force, kind="file")
    try:
        fractions = SplitConfig(train=train, validation=validation, test=test)
    except ValidationError as exc:
        raise UsageError(f"bad split fractions: {exc.errors()[0]['msg']}") from exc
    result = _load(path, fmt, criteria)
    ensure_usable(result, strict=strict)
    sp = make_split(result.dataset, fractions.model_dump(), seed)
    save_split(sp, out)
    sizes = {k: len(v) for k, v in sp.groups.items()}
    if mode.json:
        emit_json(
            {"out": str(out), "groups": sizes, "hashes": sp.hashes(), "data_hash": sp.data_hash}
        )
    else:
        info(f"wrote {out}: " + ", ".join(f"{k} {v} groups" for k, v in sizes.items()))


@app.command("sample")
def sample(
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Folder to write the ReDSM5-layout files to.")
    ],
    posts: Annotated[
        int | None,
        typer.Option(
            "--posts", "-n", min=1, max=100_000, help="Number of posts (200; hard: 1,484)."
        ),
    ] = None,
    seed: SeedOpt = 13,
    profile: Annotated[
        str,
        typer.Option(
            "--profile",
            help="short (the bundled sample), long (real post lengths, ~300 words) or hard "
            "(ReDSM5's difficulties: sparse evidence, rare criteria, distractors).",
        ),
    ] = "short",
    force: ForceOpt = False,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Write a synthetic dataset in the ReDSM5 layout (our own words, all ten labels); a
    folder that already holds files only with --force."""
    from cea.data.sample import PROFILES, write_sample
    from cea.errors import UsageError

    mode = set_mode(json_out, quiet)
    if profile not in PROFILES:
        raise UsageError(f"--profile must be one of {', '.join(PROFILES)}")
    if posts is None:
        from cea.data.sample_hard import HARD_POSTS

        posts = HARD_POSTS if profile == "hard" else 200
    check_out(out, force=force, kind="folder")
    stats = write_sample(out, posts, seed, profile)
    if mode.json:
        emit_json({"out": str(out), **stats.__dict__})
    else:
        info(
            f"wrote {stats.posts} posts and {stats.annotations} annotations to {out} "
            f"({stats.symptom_free} symptom-free posts)"
        )
