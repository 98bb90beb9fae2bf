"""Competition mode: a public and a private part of the test set, team limits, the final board."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest
from test_leaderboard_app import APP, CLASSES, answer_key, csv_bytes, fabricate_out, onehot

from pipeline.leaderboard import __main__ as cli
from pipeline.leaderboard import competition
from pipeline.leaderboard.competition import Settings, divide
from pipeline.leaderboard.upload import check_upload

DAY = 86_400.0
NOON = 1_780_000_000.0 - 1_780_000_000.0 % DAY + DAY / 2  # a fixed UTC noon


@pytest.fixture(autouse=True)
def keep_main_module(monkeypatch) -> None:
    """AppTest installs the app as ``sys.modules["__main__"]`` (see test_leaderboard_app)."""
    monkeypatch.setitem(sys.modules, "__main__", sys.modules["__main__"])


@pytest.fixture
def out(tmp_path: Path, make_tree) -> Path:
    out = fabricate_out(tmp_path, make_tree)
    competition.save_settings(out, Settings(public_share=0.5, daily_limit=2))
    return out


def answers(key: dict[str, str], right: set[str]) -> bytes:
    """A submission right on the ids of ``right``, one class off on the others."""
    ids = list(key)
    preds = [key[i] if i in right else CLASSES[(CLASSES.index(key[i]) + 1) % 3] for i in ids]
    return csv_bytes(ids, onehot(preds))


def send(out: Path, team: str, data: bytes, now: float) -> competition.Record:
    key = answer_key(out)
    upload = check_upload(data, key, "mine.csv", vocabulary=CLASSES)
    settings = competition.load_settings(out)
    return competition.submit(out, "cells", team, upload, "mine.csv", key, CLASSES, settings, now)


def test_division_is_deterministic_stratified_and_complete() -> None:
    key = {f"{c}/{i:03d}.jpg": c for c in CLASSES for i in range(10)}
    public, private = divide(key, 0.3)
    assert public.isdisjoint(private) and public | private == set(key)
    assert all(sum(key[i] == c for i in public) == 3 for c in CLASSES)
    shuffled = dict(reversed(list(key.items())))
    assert divide(shuffled, 0.3) == (public, private)
    assert divide(key, 0.5)[0] > public  # a larger share keeps the smaller share's draws


def test_uploads_are_scored_on_both_parts_and_ranked_on_the_public_one(out: Path) -> None:
    key = answer_key(out)
    public, private = divide(key, 0.5)
    prober = send(out, "prober", answers(key, set(public)), NOON)  # right on public only
    honest = send(out, "honest", answers(key, set(key)), NOON + 60)
    assert (prober.public["accuracy"], prober.private["accuracy"]) == (1.0, 0.0)
    assert prober.public["n"] == len(public) and prober.private["n"] == len(private)
    settings = competition.load_settings(out)
    fingerprint = competition.public_set(key, 0.5)
    table = competition.board(out, "cells", settings, fingerprint)
    assert table["team"].tolist() == ["prober", "honest"]  # equal public scores: earlier first
    assert "private_acc" not in table.columns and "shake_up" not in table.columns
    assert honest.team == "honest"

    revealed = Settings(public_share=0.5, daily_limit=2, revealed=True)
    final = competition.board(out, "cells", revealed, fingerprint)
    assert final["team"].tolist() == ["honest", "prober"]
    assert final["private_acc"].tolist() == [1.0, 0.0]
    assert final["shake_up"].tolist() == [1, -1]  # public rank − private rank
    # another public part (share changed) is another board: old scores are not mixed in
    assert competition.board(out, "cells", revealed, "another").empty


def test_daily_limit_history_and_selection(out: Path) -> None:
    key = answer_key(out)
    everything = set(key)
    first = send(out, "team a", answers(key, set()), NOON)
    best = send(out, "team a", answers(key, everything), NOON + 1)
    with pytest.raises(
        ValueError, match=r"team-a has used all 2 submissions of today \(UTC\): try again tomorrow"
    ):
        send(out, "team a", answers(key, everything), NOON + 2)
    assert len(competition.history(out, "cells", "team a")) == 2
    send(out, "team a", answers(key, set()), NOON + DAY)  # a new UTC day
    records = competition.history(out, "cells", "team a")
    assert [r.id for r in records][:2] == [first.id, best.id] and len(records) == 3
    assert competition.selected(out, "cells", "team a", records).id == best.id  # best public
    competition.select(out, "cells", "team a", first.id)
    assert competition.selected(out, "cells", "team a", records).id == first.id
    revealed = Settings(public_share=0.5, daily_limit=2, revealed=True)
    final = competition.board(out, "cells", revealed, competition.public_set(key, 0.5))
    assert final.loc[0, "selected"] == first.id and final.loc[0, "private_acc"] == 0.0
    with pytest.raises(ValueError, match="has no submission 'nope'"):
        competition.select(out, "cells", "team a", "nope")


def test_competition_uploads_stay_off_the_zoo_board(out: Path, capsys) -> None:
    send(out, "team", answers(answer_key(out), set(answer_key(out))), NOON)
    assert cli.main(["--out", str(out)]) == 0
    text = capsys.readouterr().out
    zoo_board, _, contest = text.partition("### cells: competition, public board")
    assert "| team |" not in zoo_board and "| 1 | team | 1.0000 |" in contest
    assert "private" not in contest


def test_cli_turns_the_mode_on_and_reveals(tmp_path: Path, make_tree, capsys) -> None:
    out = fabricate_out(tmp_path, make_tree)
    assert cli.main(["--out", str(out), "--reveal"]) == 2
    assert "competition mode is off; turn it on with --competition" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        cli.main(["--out", str(out), "--competition", "--public-share", "1.5"])
    assert info.value.code == 2 and not competition.settings_file(out).exists()
    assert cli.main(["--out", str(out), "--competition", "--daily-limit", "3"]) == 0
    assert competition.load_settings(out) == Settings(daily_limit=3)
    send(out, "team", answers(answer_key(out), set()), NOON)
    assert cli.main(["--out", str(out), "--reveal"]) == 0
    assert competition.load_settings(out).revealed
    assert "shake_up" in capsys.readouterr().out


# --- the app ---------------------------------------------------------------------------------


def open_app(out: Path, monkeypatch) -> AppTest:
    monkeypatch.setenv("WBCZOO_OUT", str(out))
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def frame(at: AppTest, column: str):
    """The first table drawn with ``column`` (AppTest does not expose a dataframe's key)."""
    return next(d.value for d in at.dataframe if column in d.value.columns)


def test_app_submits_shows_public_only_limits_and_reveals(out: Path, monkeypatch) -> None:
    key = answer_key(out)
    public, _ = divide(key, 0.5)
    at = open_app(out, monkeypatch)
    assert any("Competition" in m.value and "public part" in m.value for m in at.markdown)
    at.text_input(key="team").set_value("Probers").run()
    at.file_uploader(key="upload").set_value(("p.csv", answers(key, set(public)), "text/csv"))
    at.run()
    assert not at.error, [e.value for e in at.error]
    at.button(key="submit").click().run()
    assert [s.value for s in at.success] == [
        f"p.csv: submission {competition.history(out, 'cells', 'Probers')[0].id} of team "
        "Probers, public accuracy 1.0000."
    ]
    board = frame(at, "team")
    assert board["team"].tolist() == ["Probers"] and "private_acc" not in board.columns
    assert "private_acc" not in frame(at, "submission").columns
    assert "1 of 2 submissions used today (UTC)." in [c.value for c in at.caption]

    at.file_uploader(key="upload").set_value(("q.csv", answers(key, set(key)), "text/csv")).run()
    at.button(key="submit").click().run()
    at.file_uploader(key="upload").set_value(("r.csv", answers(key, set()), "text/csv")).run()
    at.button(key="submit").click().run()
    assert "Probers has used all 2 submissions of today" in at.error[0].value
    assert len(competition.history(out, "cells", "Probers")) == 2

    partial = ("id,neutrophil\n" + "".join(f"{i},1.0\n" for i in key)).encode()
    at.file_uploader(key="upload").set_value(("s.csv", partial, "text/csv")).run()
    assert "no probability column for eosinophil, lymphocyte" in at.error[0].value

    # p.csv and q.csv tie on public: the earlier is selected until the team picks q.csv
    p_id, q_id = (r.id for r in competition.history(out, "cells", "Probers"))
    assert frame(at, "submission")["selected"].tolist() == [True, False]
    at.selectbox(key="final-Probers").set_value(q_id).run()
    assert frame(at, "submission")["selected"].tolist() == [False, True]

    assert cli.main(["--out", str(out), "--reveal"]) == 0
    at = open_app(out, monkeypatch)
    board = frame(at, "team")
    assert (board.loc[0, "selected"], board.loc[0, "private_acc"]) == (q_id, 1.0)
    assert board.loc[0, "shake_up"] == 0
    assert json.loads(competition.settings_file(out).read_text())["revealed"] is True
