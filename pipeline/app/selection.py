"""What the sidebar chose: the one state every page of a run reads."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import streamlit as st

from pipeline.ranking.disclosure import Disclosure

KEY = "selection"  # in st.session_state: the entry script writes it, then runs the page


@dataclass(frozen=True)
class Selection:
    out: str  # the zoo's out folder (a reference zoo's unpacked copy)
    version: str  # loaders.version_of(out): part of every cache key
    dataset: str
    long: pd.DataFrame  # every entry's scores, all datasets
    test_set: str | None  # the test set ranked, when a dataset's entries have several
    part: str | None  # the cross-lab sets' part scored on the board
    view: pd.DataFrame  # the ranked rows the filters keep
    total: int  # ranked rows before the filters
    rules: Disclosure  # what a running competition lets the pages show
    read_only: bool  # a reference zoo: uploads are scored, never saved


def share(selection: Selection) -> None:
    st.session_state[KEY] = selection


def shared() -> Selection:
    """The selection the entry script made in this run (a page runs after it)."""
    return st.session_state[KEY]
