"""The entries a zoo reports as its result: the member and the ensemble chosen on validation.

A headline is the entry chosen on validation, never the best on test. An ensemble fitted on
validation (stacking, weighted, greedy) is chosen by its out-of-fold validation accuracy
(``val_acc_oof``), since its plain validation accuracy is in-sample; the others by their
validation accuracy. Ties go to the earlier name, as in ``methods.top_k``.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

OOF_COLUMN = "val_acc_oof"


@dataclass(frozen=True)
class Chosen:
    """The rows of a zoo's table (``zoo/ensembles-<dataset>.csv``) chosen on validation."""

    member: pd.Series | None
    ensemble: pd.Series | None


def selection_score(table: pd.DataFrame) -> pd.Series:
    """Per row, the validation accuracy it is chosen by: out-of-fold where there is one."""
    if OOF_COLUMN not in table:
        return table["val_acc"].astype(float)
    return table[OOF_COLUMN].astype(float).fillna(table["val_acc"].astype(float))


def chosen_on_validation(table: pd.DataFrame) -> Chosen:
    """The member and the ensemble with the highest selection score (``kind`` starts with
    ``member`` or ``ensemble``); None where the table has no row of that kind."""
    scored = table.assign(_score=selection_score(table))

    def best(prefix: str) -> pd.Series | None:
        rows = scored[scored["kind"].astype(str).str.startswith(prefix)]
        if rows.empty:
            return None
        ordered = rows.sort_values(["_score", "name"], ascending=[False, True], kind="stable")
        return ordered.iloc[0].drop("_score")

    return Chosen(best("member"), best("ensemble"))


def describe(row: pd.Series) -> str:
    """``name: val 98.32% out-of-fold, test 97.76%`` in percent; test where it was scored."""
    oof = row.get(OOF_COLUMN)
    val = f"{100 * float(oof):.2f}% out-of-fold" if pd.notna(oof) else (
        f"{100 * float(row['val_acc']):.2f}%")  # fmt: skip
    test = row.get("test_acc")
    scored = f", test {100 * float(test):.2f}%" if pd.notna(test) else ""
    return f"{row['name']}: val {val}{scored}"


def summary(chosen: Chosen) -> list[str]:
    """The lines a command prints for the chosen entries."""
    lines = []
    for what, row in (("member", chosen.member), ("ensemble", chosen.ensemble)):
        if row is not None:
            lines.append(f"{what} chosen on validation: {describe(row)}")
    return lines
