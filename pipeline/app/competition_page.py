"""The Competition page: score and save an upload on any evaluation set, or, in competition
mode, a team's submissions on the public part of the test bundle."""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import streamlit as st
from streamlit.runtime.uploaded_file_manager import UploadedFile

from pipeline.app.loaders import answer_key, dataset_sets, sample_csv
from pipeline.app.selection import Selection
from pipeline.ranking import competition
from pipeline.ranking.present import head_lines, set_description
from pipeline.ranking.queries import would_rank
from pipeline.ranking.teams import LoginsLimited, Team, TokenError, authenticate
from pipeline.ranking.upload import MAX_BYTES, check_upload, sanitise_name, save_upload

LOG = logging.getLogger(__name__)


def one_line_failures(page: Callable[..., None]) -> Callable[..., None]:
    """``page`` showing any failure as one line: participants never see a traceback (nor the
    paths in it); the server's log gets it for the host."""

    @functools.wraps(page)
    def run(*args: object, **kwargs: object) -> None:
        try:
            page(*args, **kwargs)
        except Exception as exc:  # Streamlit's rerun and stop are BaseExceptions: they pass
            LOG.exception("the competition page failed")
            st.error(
                f"This page failed ({type(exc).__name__}); the host finds the details in the "
                "server's log."
            )

    return run


def submission_uploader(set_name: str) -> UploadedFile | None:
    return st.file_uploader(
        f"A submission CSV for {set_name} (format: submissions/README.md; at most "
        f"{MAX_BYTES // 2**20} MB)",
        type=["csv"],
        key="upload",
        max_upload_size=MAX_BYTES // 2**20,
    )


def format_help(out: str, set_name: str, source: dict, key: dict[str, str]) -> None:
    """The set in words, a sample submission to download and its first lines inline."""
    st.markdown(
        "Answer key: "
        + set_description(set_name, source, len(key), len(set(key.values()))).replace("**", "")
    )
    sample = sample_csv(out, json.dumps(source, sort_keys=True))
    st.markdown(
        "A submission is a CSV with a header `id`, one probability column per class and `pred`,"
        " one row per image (the repository's `submissions/README.md`); the sample "
        "below gives every class the same probability:"
    )
    st.code(head_lines(sample), language="text")
    st.download_button(
        f"Download a sample submission for {set_name} ({len(key)} rows)",
        sample,
        file_name=f"sample-{set_name}.csv",
        mime="text/csv",
        key=f"sample-{set_name}",
    )


@one_line_failures
def competition_page(chosen: Selection) -> None:
    """Score an upload on an evaluation set of the dataset and offer to save it (not on a
    read-only zoo), with its would-be rank among the board's rows. In competition mode:
    ``contest``."""
    out, version, dataset = chosen.out, chosen.version, chosen.dataset
    if "saved" in st.session_state:
        st.success(st.session_state.pop("saved"))
    sets = dataset_sets(out, version, dataset)
    if not sets:
        st.info(f"No entry of {dataset} says where its answer keys come from.")
        return
    try:
        settings = competition.load_settings(Path(out))
    except (OSError, ValueError) as exc:  # a hand-edited settings file
        st.error(f"Competition settings: {exc}")
        return
    if settings is not None:
        contest(out, dataset, settings)
        return
    set_name = st.selectbox(f"Evaluation set of {dataset}", list(sets), key="eval_set")
    source = sets[set_name]
    try:
        answers = answer_key(out, json.dumps(source, sort_keys=True))
    except (OSError, KeyError, ValueError) as exc:  # OSError, KeyError: the answer key's data
        st.error(str(exc))
        return
    format_help(out, set_name, source, answers.labels)
    uploaded = submission_uploader(set_name)
    if uploaded is None:
        return
    try:
        result = check_upload(uploaded.getvalue(), answers, uploaded.name)
    except ValueError as exc:
        st.error(str(exc))
        return
    s = result.scores
    rank, of, label = would_rank(chosen.long, dataset, set_name, s, chosen.test_set)
    st.success(f"{uploaded.name}: valid, {s['n']} images scored.")
    cols = st.columns(4)
    cols[0].metric("accuracy", f"{100 * s['accuracy']:.1f}%")
    cols[1].metric("macro-F1", f"{100 * s['macro_f1']:.1f}%")
    cols[2].metric("balanced accuracy", f"{100 * s['balanced_accuracy']:.1f}%")
    cols[3].metric(f"would rank ({label})", f"{rank} of {of}")
    if chosen.read_only:
        st.caption("The reference zoo is read-only: to keep this submission, save it on your zoo.")
        return

    name = st.text_input("Name to save it under", key="upload_name")
    description = st.text_input(
        "Description (optional: the model, its training, a link)", key="upload_description"
    )
    if st.button("Save", key="save", disabled=not name.strip()):
        try:
            folder = save_upload(
                Path(out), dataset, set_name, name, result, source, description=description
            )
        except ValueError as exc:
            st.error(str(exc))
            return
        st.session_state["saved"] = f"Saved as {folder}; it is on the leaderboard now."
        st.rerun()
    elif name.strip():
        with contextlib.suppress(ValueError):  # an unusable name is reported on Save
            st.caption(f"It will be saved as {dataset}/{sanitise_name(name)}.")


def contest(out: str, dataset: str, settings: competition.Settings) -> None:
    """Competition mode: teams submit for the test bundle's opaque ids and are ranked on its
    public part; a team's token opens its submitting, history and final selection."""
    try:
        key = competition.load_key(Path(out), dataset)
    except ValueError as exc:
        st.error(str(exc))
        return
    if key is None:
        st.info(
            f"No competition on {dataset} yet: the organiser makes its test bundle with "
            f"`python -m pipeline.leaderboard --out DIR --competition --tag {dataset} "
            "--bundle BUNDLE`."
        )
        return
    public, _ = key.divide(settings.public_share)
    hidden = "revealed" if settings.revealed else "hidden until the organiser reveals them"
    deadline = f" Deadline: {settings.deadline} (UTC)." if settings.deadline else ""
    st.markdown(
        f"**Competition** on the {dataset} test bundle: ranked on its public part "
        f"({len(public)} of {len(key.images)} images, stratified, drawn in secret); private "
        f"scores {hidden}. At most {settings.daily_limit} submissions per team and UTC day."
        + deadline
    )
    table = competition.board(Path(out), dataset, settings, key.public_set(settings.public_share))
    if table.empty:
        st.info("No submission yet.")
    else:
        st.dataframe(table, hide_index=True, key="competition_board")
    if settings.revealed:
        st.caption(
            "Final ranking on the private part, by each team's selected submission; public "
            "rank by best public accuracy; shake-up = public rank − private rank."
        )
    cols = st.columns(2)
    name = cols[0].text_input("Team", key="team").strip()
    token = cols[1].text_input("Token", key="token", type="password").strip()
    if not (name and token):
        st.caption("Your team's name and the token the organiser gave you open submitting.")
        return
    try:
        team = login(out, name, token)
    except ValueError as exc:
        st.error(str(exc))
        return
    reason = competition.closed(settings, time.time())
    if reason:
        st.info(f"Submissions are closed: {reason}.")
    else:
        uploaded = submission_uploader(competition.SET)
        if uploaded is not None:
            submit_form(out, dataset, team, uploaded, key)
    team_history(out, dataset, team, settings)


def login(out: str, name: str, token: str) -> Team:
    """``authenticate``, once per name and token: Streamlit reruns the page on every click, and
    each rerun would count as one more failed login towards the team's limit."""
    attempt = f"{name}\0{token}"
    failed = st.session_state.get("failed_login")
    if failed and failed[0] == attempt:
        raise TokenError(failed[1])
    try:
        return authenticate(Path(out), name, token)
    except LoginsLimited:  # may pass once the window has moved on: ask again
        raise
    except TokenError as exc:
        st.session_state["failed_login"] = (attempt, str(exc))
        raise


def submit_form(
    out: str,
    dataset: str,
    team: Team,
    uploaded: UploadedFile,
    key: competition.ContestKey,
) -> None:
    """Check an uploaded file; on Submit, score and store it for ``team``. Scores show only once
    submitted, and only the public one: checking a file is no free probe of the test set."""
    try:
        competition.check(uploaded.getvalue(), key, uploaded.name)
    except ValueError as exc:
        st.error(str(exc))
        return
    st.caption(f"{uploaded.name} is valid. Submit it to see its public score.")
    if st.button("Submit", key="submit"):
        try:
            record = competition.submit(
                Path(out), dataset, team, uploaded.getvalue(), uploaded.name, key
            )
        except ValueError as exc:
            st.error(str(exc))
            return
        st.session_state["saved"] = (
            f"{uploaded.name}: submission {record.id} of team {record.team}, public "
            f"accuracy {record.public['accuracy']:.4f}."
        )
        st.rerun()


def team_history(out: str, dataset: str, team: Team, settings: competition.Settings) -> None:
    """A team's submissions, today's count, and its choice for the final ranking."""
    try:
        records = competition.history(Path(out), dataset, team.name)
    except ValueError as exc:  # a damaged record
        st.error(str(exc))
        return
    if not records:
        st.caption(f"No submission by {team.name} yet.")
        return
    chosen = competition.final(Path(out), dataset, team.name, records)
    rows = []
    for r in records:
        row = {"submission": r.id, "file": r.file, "created": r.created}
        row |= {"public_acc": r.public["accuracy"], "public_bacc": r.public["balanced_accuracy"]}
        if settings.revealed:
            row["private_acc"] = r.private["accuracy"]
        rows.append(row | {"selected": chosen is not None and r.id == chosen.id})
    st.subheader(f"Submissions of {team.name}")
    st.dataframe(pd.DataFrame(rows), hide_index=True, key="history")
    today = time.strftime("%Y-%m-%d", time.gmtime())
    used = sum(r.day == today for r in records)
    st.caption(f"{used} of {settings.daily_limit} submissions used today (UTC).")
    if settings.revealed:
        return
    ids = [r.id for r in records]
    pick = st.selectbox(
        "Selected for the final ranking (default: the best public score)",
        ids,
        index=ids.index(chosen.id),
        key=f"final-{team.name}",
    )
    if pick != chosen.id:
        try:
            competition.select(Path(out), dataset, team, pick)
        except ValueError as exc:  # revealed since the page was drawn
            st.error(str(exc))
            return
        st.rerun()
