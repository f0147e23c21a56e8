"""`cea augment list|preview`: the augmenter registry, and a side-by-side preview of a policy."""

from __future__ import annotations

import os
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from cea.cli._common import JsonOpt, QuietOpt, SetOpt, console, emit_json, set_mode

app = typer.Typer(
    help="Augmenters: what is available here, and what a policy does.", no_args_is_help=True
)

ConfigOpt = Annotated[
    str | None,
    typer.Option("--config", "-c", help="YAML config, or a packaged one: default, tiny."),
]


def _wordnet_roots() -> list[Any]:
    from cea.augment.wordnet import default_roots

    return default_roots(os.environ.get("NLTK_DATA"))


@app.command("list")
def list_command(
    config: ConfigOpt = None,
    sets: SetOpt = None,
    overrides: Annotated[list[str] | None, typer.Argument(help="key.path=value overrides.")] = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Every augmenter with its kind, whether it can run here, and why not."""
    from pathlib import Path

    from cea.augment.registry import Resources, all_names, availability
    from cea.augment.wordnet import find_wordnet
    from cea.config import load_config

    mode = set_mode(json_out, quiet)
    cfg = load_config(config, [*(sets or []), *(overrides or [])])
    res = Resources(
        wordnet_folder=find_wordnet(_wordnet_roots()),
        mlm_path=Path(cfg.augment.mlm_path) if cfg.augment.mlm_path else None,
    )
    rows = [availability(name, res) for name in all_names()]
    if mode.json:
        emit_json(
            {
                "available": sum(r.available for r in rows),
                "augmenters": [
                    {
                        "name": r.name,
                        "kind": r.kind,
                        "available": r.available,
                        "reason": r.reason,
                        "description": r.description,
                        "in_policy": r.name in cfg.augment.augmenters,
                    }
                    for r in rows
                ],
            }
        )
        return
    if mode.quiet:  # the names that can run here, one a line
        for r in rows:
            if r.available:
                console.print(r.name, highlight=False, markup=False)
        return
    table = Table(title=f"{sum(r.available for r in rows)} of {len(rows)} augmenters available")
    for col in ("name", "kind", "available", "what / why not"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            r.name,
            r.kind,
            "[green]yes[/]" if r.available else "[red]no[/]",
            r.description if r.available else r.reason,
        )
    console.print(table)


@app.command("preview")
def preview_command(
    config: ConfigOpt = None,
    sets: SetOpt = None,
    overrides: Annotated[list[str] | None, typer.Argument(help="key.path=value overrides.")] = None,
    n: Annotated[int, typer.Option("-n", min=1, max=200, help="Examples to show.")] = 8,
    epoch: Annotated[int, typer.Option("--epoch", min=0, help="Which epoch's draw.")] = 0,
    width: Annotated[int, typer.Option("--width", min=40, help="Characters shown per text.")] = 300,
    refit: Annotated[bool, typer.Option("--refit", help="Rebuild the TF-IDF cache entry.")] = False,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Originals and augmented texts side by side: the first N training examples the policy
    augments in that epoch (same draw as `cea train`). With `augment.enabled: false` training
    augments nothing: the preview then says so and shows what enabling the policy would do."""
    from cea.augment.build import build_augmentation, lexicon_for, resources_for
    from cea.config import load_config
    from cea.data.prepare import prepare_data

    mode = set_mode(json_out, quiet)
    cfg = load_config(
        config,
        [*(sets or []), *(overrides or [])],
        {"augment.refit_tfidf": True if refit else None},
    )
    data = prepare_data(cfg)
    train = data.examples["train"]
    res, loaded = resources_for(
        cfg.augment, [e.text for e in train], wordnet_roots=_wordnet_roots()
    )
    lexicon = lexicon_for(cfg.augment, data.descriptions, data.labels, train)
    aug = build_augmentation(cfg.augment, cfg.seed, res, lexicon)
    shown: list[dict[str, Any]] = []
    for i, ex in enumerate(train):
        rng = aug.rng_for(epoch, i)
        if rng is None:
            continue
        out = aug.augment(ex.text, rng)
        shown.append(
            {
                "id": ex.example_id,
                "original": ex.text,
                "augmented": out.text,
                "ops": out.ops,
                "near_misses": list(out.near_misses),  # lexicon words it was kept from writing
                "refused": out.refused,
            }
        )
        if len(shown) >= n:
            break
    enabled = bool(cfg.augment.enabled)
    if mode.json:
        emit_json(
            {
                "epoch": epoch,
                # False: `cea train` with this config augments nothing; the examples are what
                # augment.enabled=true would do
                "training_augments": enabled,
                "resources": loaded,
                "lexicon": lexicon.by_criterion if lexicon is not None else None,
                "examples": shown,
            }
        )
        return
    if enabled:
        title = f"epoch {epoch}: {len(shown)} augmented training examples"
    else:
        console.print(
            "[yellow]augment.enabled is false: `cea train` with this config does not augment."
            "[/] Below is what it would do with augment.enabled=true (e.g. "
            "`--set augment.enabled=true`)."
        )
        title = (
            f"NOT APPLIED (augment.enabled=false) — epoch {epoch}: what the policy would do "
            f"to {len(shown)} training examples if enabled"
        )
    table = Table(title=title, show_lines=True)
    table.add_column("original", ratio=1)
    table.add_column("augmented", ratio=1)
    table.add_column("augmenters (words changed)")
    for row in shown:
        table.add_row(  # Text(): a "[...]" in a post is not Rich markup
            Text(row["original"][:width]),
            Text(row["augmented"][:width]),
            Text(
                ", ".join(f"{name} ({k})" for name, k in row["ops"])
                + (
                    f"\nnear-miss: {', '.join(row['near_misses'])}"
                    + (" (outcome refused)" if row["refused"] else "")
                    if row["near_misses"]
                    else ""
                ),
                style="yellow" if row["near_misses"] else "",
            ),
        )
    console.print(table)
