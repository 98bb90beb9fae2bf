"""Competition mode: an opaque test bundle, a secret division into a public and a private part,
team tokens and limits, the audit log, the final board, and nothing shown before the reveal."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import multiprocessing
import re
import sys
import tarfile
import time
import tomllib
from pathlib import Path

import numpy as np
import pytest
from boards import (
    APP,
    CLASSES,
    ZOO_COMMAND,
    answer_key,
    csv_bytes,
    onehot,
    open_page,
    predictions,
)
from PIL import Image
from streamlit.testing.v1 import AppTest

from pipeline.app.details import EXPLANATIONS_HIDDEN
from pipeline.app.sidebar import REFERENCES_HIDDEN
from pipeline.commands import leaderboard as cli
from pipeline.commands import wbczoo
from pipeline.commands.reference import main as pack_main
from pipeline.data import load_dataset
from pipeline.evaluation.scoring import AnswerKey
from pipeline.ranking import competition, teams
from pipeline.ranking.bundle import JPEG_TOLERANCE, make_bundle
from pipeline.ranking.competition import Settings, divide
from pipeline.ranking.disclosure import disclosure
from pipeline.ranking.fingerprints import image_fingerprint, set_fingerprints
from pipeline.ranking.limits import MAX_BYTES
from pipeline.ranking.reference import ReferenceError, pack, references
from pipeline.runs.layout import Layout
from pipeline.runs.submissions import SubmissionError, read_submission, write_submission

DAY = 86_400.0
NOON = 1_780_000_000.0 - 1_780_000_000.0 % DAY + DAY / 2  # a fixed UTC noon
HEX_ID = re.compile(r"[0-9a-f]{16}\.(jpg|png)")


def organise(out: Path, bundle: Path, capsys, *names: str) -> dict[str, str]:
    """Competition mode on with a bundle, as the organiser does it; team name -> token."""
    args = ["--out", str(out), "--competition", "--public-share", "0.5", "--daily-limit", "2"]
    assert cli.main([*args, "--bundle", str(bundle)]) == 0
    tokens = {}
    for name in names:
        assert cli.main(["--out", str(out), "--add-team", name]) == 0
        tokens[name] = re.search(r"token (\S+)", capsys.readouterr().out).group(1)
    return tokens


@pytest.fixture
def tokens(out: Path, tmp_path: Path, capsys) -> dict[str, str]:
    return organise(out, tmp_path / "bundle", capsys, "team a", "team b")


def contest(out: Path) -> competition.ContestKey:
    return competition.load_key(out, "cells")


def answers(key: competition.ContestKey, right: set[str]) -> bytes:
    """A submission on the opaque ids, right on those of ``right``, one class off elsewhere."""
    labels = key.answers.labels
    ids = sorted(labels)
    preds = [labels[i] if i in right else CLASSES[(CLASSES.index(labels[i]) + 1) % 3] for i in ids]
    return csv_bytes(ids, onehot(preds))


def audit_log(out: Path) -> list[dict]:
    return [json.loads(line) for line in Layout(out).competition_audit.read_text().splitlines()]


def send(out: Path, team: str, token: str, data: bytes, now: float) -> competition.Record:
    who = teams.authenticate(out, team, token)
    return competition.submit(out, "cells", who, data, "mine.csv", contest(out), now)


# --- the bundle ------------------------------------------------------------------------------


def test_division_is_stratified_complete_and_needs_the_secret_salt() -> None:
    key = {f"{c}/{i:03d}.jpg": c for c in CLASSES for i in range(10)}
    public, private = divide(key, 0.3, "salt")
    assert public.isdisjoint(private) and public | private == set(key)
    assert all(sum(key[i] == c for i in public) == 3 for c in CLASSES)
    shuffled = dict(reversed(list(key.items())))
    assert divide(shuffled, 0.3, "salt") == (public, private)
    assert divide(key, 0.5, "salt")[0] > public  # a larger share keeps the smaller share's draws
    # another salt draws another division: without the organiser's, nobody recomputes it
    assert divide(key, 0.3, "other")[0] != public


def test_bundle_images_carry_no_class_name_or_order(tmp_path: Path, make_tree) -> None:
    counts = {c: 30 for c in CLASSES}
    make_tree(tmp_path / "cells", counts)
    key = {f"{c}/img_{i:03d}.jpg": c for c in CLASSES for i in range(30)}
    # a JPEG whose comment and EXIF name its class and file, and a PNG
    tell = "eosinophil/img_000.jpg"
    with Image.open(tmp_path / "cells" / tell) as image:
        exif = Image.Exif()
        exif[0x010E] = "eosinophil EO_1.jpg"  # ImageDescription
        image.save(tmp_path / "cells" / tell, comment=b"eosinophil img_000", exif=exif)
    Image.new("RGB", (9, 7), (200, 10, 30)).save(tmp_path / "cells/neutrophil/img_029.png")
    key["neutrophil/img_029.png"] = key.pop("neutrophil/img_029.jpg")
    source = {"adapter": "folder", "root": str(tmp_path / "cells"), "split": "test"}
    bundle = tmp_path / "bundle"
    contest_key = make_bundle(bundle, "cells", source, AnswerKey(key, CLASSES))

    assert sorted(p.name for p in bundle.iterdir()) == ["README.txt", "images", SAMPLE]
    files = sorted((bundle / "images").iterdir())
    assert len(files) == len(key) and all(HEX_ID.fullmatch(f.name) for f in files)
    for f in files:
        real, label = contest_key.images[f.stem]
        data = f.read_bytes().lower()
        for telltale in (*CLASSES, Path(real).stem, "eo_1"):
            assert telltale.encode() not in data, (f.name, telltale)
        with Image.open(f) as mine, Image.open(tmp_path / "cells" / real) as theirs:
            error = np.abs(np.asarray(mine, np.int16) - np.asarray(theirs.convert("RGB"))).mean()
            assert error <= (JPEG_TOLERANCE if f.suffix == ".jpg" else 0), (f.name, error)
    assert {f.suffix for f in files} == {".jpg", ".png"}
    assert set(contest_key.fingerprints) == set_fingerprints(tmp_path / "cells", key)
    # the random ids' order says nothing of the classes (files are written in that order)
    by_id = [contest_key.images[f.stem][1] for f in files]
    assert by_id != sorted(by_id)
    sample = read_submission(bundle / SAMPLE)
    assert sorted(sample.ids) == sorted(contest_key.images)
    text = (bundle / SAMPLE).read_text() + (bundle / "README.txt").read_text()
    assert contest_key.salt not in text and "img_" not in text
    with pytest.raises(ValueError, match="already exists: give --bundle a new folder"):
        make_bundle(bundle, "cells", source, AnswerKey(key, CLASSES))


SAMPLE = "sample_submission.csv"


def scan_data(jpeg: bytes) -> bytes:
    """The entropy-coded data of a baseline JPEG: from its start of scan to its end of image."""
    start = jpeg.index(b"\xff\xda")
    return jpeg[start : jpeg.index(b"\xff\xd9", start) + 2]


def test_bundle_jpegs_are_rebuilt_from_their_pixels(tmp_path: Path, write_image) -> None:
    """A payload after the end of image, in a comment and in an application segment reaches
    nothing in the bundle: the file is encoded afresh, none of the source's coded bytes kept."""
    source = write_image(tmp_path / "cells" / "neutrophil" / "n.jpg", size=(64, 48))
    payload = b"PAYLOAD-" + bytes(range(256)) * 2
    with Image.open(source) as image:
        image.save(source, quality=80, comment=b"C0MMENT" + payload)
    data = source.read_bytes()
    app9 = b"\xff\xe9" + (len(payload) + 2).to_bytes(2, "big") + payload  # after SOI
    source.write_bytes(data[:2] + app9 + data[2:] + payload)  # and after EOI
    key = {"neutrophil/n.jpg": "neutrophil"}
    where = {"adapter": "folder", "root": str(tmp_path / "cells"), "split": "test"}
    contest_key = make_bundle(tmp_path / "bundle", "cells", where, AnswerKey(key, CLASSES))
    (written,) = (tmp_path / "bundle" / "images").iterdir()
    out = written.read_bytes()
    assert written.suffix == ".jpg" and payload[:64] not in out and b"C0MMENT" not in out
    assert out.endswith(b"\xff\xd9")  # nothing after the end of image
    assert scan_data(out) != scan_data(data) and scan_data(data)[2:40] not in out
    with Image.open(written) as mine, Image.open(source) as theirs:
        diff = np.abs(np.asarray(mine, np.int16) - np.asarray(theirs)).mean()
    assert diff < 4
    assert contest_key.fingerprints == (image_fingerprint(source),)


def test_ids_read_from_file_names_score_nothing(out: Path, tokens: dict) -> None:
    """The attack of issue 23: a one-hot file from ``id.split('/')[-2]``. The answer key's ids
    are not the competition's, and the competition's say nothing."""
    key = answer_key(out)
    from_names = csv_bytes(list(key), onehot([i.split("/")[-2] for i in key]))
    with pytest.raises(SubmissionError, match="ids missing"):
        send(out, "team a", tokens["team a"], from_names, NOON)
    assert not any(c in i for i in contest(out).images for c in CLASSES)
    assert competition.history(out, "cells", "team a") == []


def test_a_running_competition_is_not_packed(out: Path, tokens, tmp_path, capsys) -> None:
    """Packed before the reveal, a reference zoo would carry the test labels (its frozen answer
    keys); after it, it still holds no competition file, key or salt."""
    send(out, "team a", tokens["team a"], answers(contest(out), set()), NOON)
    args = ["--out", str(out), "--reference", "tiny", "--into", str(tmp_path / "refs")]
    assert pack_main(args) == 2
    err = capsys.readouterr().err
    assert "holds a competition that is not revealed" in err and err.count("\n") == 1
    assert not (tmp_path / "refs").exists()  # nothing written
    settings = Layout(out).competition_settings
    settings.write_text("{")  # damaged: it cannot say the competition is over
    with pytest.raises(ReferenceError, match="not revealed"):
        pack(out, "cells", tmp_path / "refs")
    competition.save_settings(out, Settings(public_share=0.5, daily_limit=2))
    competition.reveal(out, NOON + 1)
    archive, _ = pack(out, "cells", tmp_path / "ref")
    with tarfile.open(archive, "r:xz") as tar:
        names = tar.getnames()
        blob = b"".join(tar.extractfile(m).read() for m in tar.getmembers() if m.isfile())
    assert names and not [n for n in names if n.startswith("competition")]
    secret = contest(out)
    assert secret.salt.encode() not in blob
    assert not [o for o in secret.images if o.encode() in blob]


# --- teams, limits, audit ----------------------------------------------------------------------


def test_tokens_are_stored_hashed_and_checked(out: Path, tokens: dict, capsys) -> None:
    stored = Layout(out).competition_teams.read_text()
    assert tokens["team a"] not in stored and tokens["team b"] not in stored
    assert teams.authenticate(out, "team a", tokens["team a"]).name == "team-a"
    for name, token in (("team a", tokens["team b"]), ("team c", tokens["team a"])):
        with pytest.raises(teams.TokenError, match="unknown team or wrong token"):
            teams.authenticate(out, name, token)
    assert cli.main(["--out", str(out), "--add-team", "Team-A"]) == 2
    assert "already registered" in capsys.readouterr().err


def test_a_team_has_one_name_whatever_its_spelling(out: Path, tokens: dict, capsys) -> None:
    add = ["--out", str(out), "--add-team"]
    assert cli.main([*add, "Nova_Team"]) == 0
    token = re.search(r"token (\S+)", capsys.readouterr().out).group(1)
    for twin in ("Nova.Team", "Nova-Team", "nova team", "NOVA__TEAM", "\uff2eova Team"):
        assert cli.main([*add, twin]) == 2, twin
        assert "already registered as Nova_Team" in capsys.readouterr().err
    assert teams.authenticate(out, "nova.team", token).name == "Nova_Team"
    for own in ("key.json", "Teams.JSON", "audit jsonl", "settings_json", "final.json", ".lock",
                ".hidden", "selected.json"):  # fmt: skip
        assert cli.main([*add, own]) == 2, own
        assert "reserved for the competition's own files" in capsys.readouterr().err
    assert set(teams.registered(out)) == {"team-a", "team-b", "Nova_Team"}


def test_every_competition_file_is_its_owners_only(out: Path, tokens: dict) -> None:
    Layout(out).competition_audit.write_text("")  # as an older version left it: 0644
    key = contest(out)
    record = send(out, "team a", tokens["team a"], answers(key, set()), NOON)
    competition.select(out, "cells", teams.authenticate(out, "team a", tokens["team a"]), record.id)
    competition.reveal(out, NOON + 1)
    files = [p for p in Layout(out).competition.rglob("*") if p.is_file()]
    names = {"settings.json", "teams.json", "audit.jsonl", "key.json", "final.json"}
    assert {p.name for p in files} >= names | {"selected.json", f"{record.id}.csv"}
    shared = [p for p in files if p.stat().st_mode & 0o077 and p != Layout(out).competition_lock]
    assert not shared


def test_limits_count_per_team_and_names_are_not_free(out: Path, tokens: dict) -> None:
    key = contest(out)
    everything = set(key.images)
    first = send(out, "team a", tokens["team a"], answers(key, set()), NOON)
    best = send(out, "team a", tokens["team a"], answers(key, everything), NOON + 1)
    with pytest.raises(ValueError, match=r"team-a has used all 2 submissions of today \(UTC\)"):
        send(out, "team a", tokens["team a"], answers(key, everything), NOON + 2)
    with pytest.raises(teams.TokenError):  # another name needs that team's token
        send(out, "team z", tokens["team a"], answers(key, everything), NOON + 3)
    send(out, "team a", tokens["team a"], answers(key, set()), NOON + DAY)  # a new UTC day
    records = competition.history(out, "cells", "team a")
    assert [r.id for r in records][:2] == [first.id, best.id] and len(records) == 3
    assert competition.selected(out, "cells", "team a", records).id == best.id  # best public
    team_a = teams.authenticate(out, "team a", tokens["team a"])
    competition.select(out, "cells", team_a, first.id)
    assert competition.selected(out, "cells", "team a", records).id == first.id
    with pytest.raises(ValueError, match="has no submission 'nope'"):
        competition.select(out, "cells", team_a, "nope")
    revealed = competition.reveal(out, NOON + DAY + 1)
    with pytest.raises(ValueError, match="final selection is frozen"):
        competition.select(out, "cells", team_a, best.id)
    final = competition.board(out, "cells", revealed, key.public_set(0.5))
    assert final.loc[0, "selected"] == first.id and final.loc[0, "private_acc"] == 0.0

    log = [e for e in audit_log(out) if e["event"] == "submission"]
    assert [e["submission"] for e in log] == [r.id for r in records]
    assert log[1]["sha256"] == hashlib.sha256(answers(key, everything)).hexdigest()
    assert (log[1]["team"], log[1]["public_accuracy"]) == ("team-a", 1.0)


def submit_at_once(out: Path, token: str, data: bytes, barrier, i: int) -> None:
    """One process's submission, started with the others'; exit code 3 if refused."""
    who = teams.authenticate(out, "team a", token)
    key = contest(out)
    barrier.wait()
    try:
        competition.submit(out, "cells", who, data, f"{i}.csv", key, NOON)
    except competition.SubmissionRefused:
        sys.exit(3)


def test_the_daily_limit_holds_across_processes(out: Path, tokens: dict) -> None:
    data = answers(contest(out), set())
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(6)
    processes = [
        context.Process(target=submit_at_once, args=(out, tokens["team a"], data, barrier, i))
        for i in range(6)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(120)
    assert sorted(p.exitcode for p in processes) == [0, 0, 3, 3, 3, 3]
    records = competition.history(out, "cells", "team a")
    folder = competition.team_folder(out, "cells", "team a")
    assert len(records) == 2 and len(list(folder.glob("*.csv"))) == 2
    assert records[0].id != records[1].id
    assert all(re.fullmatch(r"\d{8}T\d{6}Z-\d{3}-[0-9a-f]{8}", r.id) for r in records)
    events = [e["event"] for e in audit_log(out)]
    assert (events.count("submission"), events.count("rejected")) == (2, 4)


def test_the_audit_log_keeps_every_event(out: Path, tokens: dict) -> None:
    key = contest(out)
    assert [e["event"] for e in audit_log(out)] == ["settings", "team_added", "team_added"]
    assert audit_log(out)[0]["daily_limit"] == 2
    with pytest.raises(SubmissionError):
        send(out, "team a", tokens["team a"], b"id,pred\n", NOON)
    for i in range(3):
        with contextlib.suppress(competition.SubmissionRefused):
            send(out, "team a", tokens["team a"], answers(key, set()), NOON + i)
    competition.reveal(out, NOON + 10)
    log = audit_log(out)[3:]
    assert [e["event"] for e in log] == ["rejected", "submission", "submission", "rejected",
                                         "settings", "reveal"]  # fmt: skip
    assert log[0]["sha256"] == hashlib.sha256(b"id,pred\n").hexdigest()
    assert "has used all 2 submissions" in log[3]["reason"] and log[3]["team"] == "team-a"
    assert log[5]["final"] == {"cells": {"team-a": log[1]["submission"]}}
    assert log[5]["time"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(NOON + 10))


def test_failed_logins_are_logged_and_limited_per_team(out: Path, tokens: dict) -> None:
    for i in range(teams.LOGIN_ATTEMPTS):
        with pytest.raises(teams.TokenError, match="unknown team or wrong token"):
            teams.authenticate(out, "Team_A", "guess", NOON + i)
    with pytest.raises(teams.LoginsLimited, match="too many failed logins for 'team a'"):
        teams.authenticate(out, "team a", tokens["team a"], NOON + 10)  # even the right token
    assert teams.authenticate(out, "team b", tokens["team b"], NOON + 10).name == "team-b"
    later = NOON + teams.LOGIN_WINDOW + 1  # the first failure has left the window
    assert teams.authenticate(out, "team a", tokens["team a"], later).name == "team-a"
    failed = [e for e in audit_log(out) if e["event"] == "login_failed"]
    assert len(failed) == teams.LOGIN_ATTEMPTS and {e["team"] for e in failed} == {"team-a"}
    for i in range(teams.LOGIN_ATTEMPTS):  # unknown names alike: the limit lists no team
        with pytest.raises(teams.TokenError, match="unknown team"):
            teams.authenticate(out, "ghost", "guess", NOON + i)
    with pytest.raises(teams.LoginsLimited):
        teams.authenticate(out, "ghost", "guess", NOON + 10)


def test_uploads_are_scored_on_both_parts_and_ranked_on_the_public_one(out, tokens) -> None:
    key = contest(out)
    public, private = key.divide(0.5)
    prober = send(out, "team a", tokens["team a"], answers(key, set(public)), NOON)
    honest = send(out, "team b", tokens["team b"], answers(key, set(key.images)), NOON + 60)
    assert (prober.public["accuracy"], prober.private["accuracy"]) == (1.0, 0.0)
    assert prober.public["n"] == len(public) and prober.private["n"] == len(private)
    settings = competition.load_settings(out)
    table = competition.board(out, "cells", settings, key.public_set(0.5))
    assert table["team"].tolist() == ["team-a", "team-b"]  # equal public: earlier first
    assert table["public_rank"].tolist() == [1, 1]  # and one rank, by the leaderboard's rule
    assert "private_acc" not in table.columns and "shake_up" not in table.columns
    assert honest.team == "team-b"
    revealed = Settings(public_share=0.5, daily_limit=2, revealed=True)
    final = competition.board(out, "cells", revealed, key.public_set(0.5))
    assert final["team"].tolist() == ["team-b", "team-a"]
    assert final["private_acc"].tolist() == [1.0, 0.0]
    assert final["private_rank"].tolist() == [1, 2]
    assert final["shake_up"].tolist() == [0, -1]  # public rank − private rank
    assert competition.board(out, "cells", revealed, "another").empty


def test_cli_submit_refuses_hostile_input_in_one_line(out, tokens, tmp_path, capsys) -> None:
    good, bad = tmp_path / "good.csv", tmp_path / "bad.csv"
    good.write_bytes(answers(contest(out), set()))
    bad.write_bytes(b"id,neutrophil\nx,1\n")
    base = ["--out", str(out), "--submit"]
    for args in (
        [str(good), "--team", "team a", "--token", "guess"],
        [str(good), "--team", "nobody", "--token", tokens["team a"]],
        [str(bad), "--team", "team a", "--token", tokens["team a"]],
        [str(good), "--team", "team a"],
    ):
        assert cli.main(base + args) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1, err
    events = [e["event"] for e in audit_log(out)]
    assert events[-3:] == ["login_failed", "login_failed", "rejected"]
    assert cli.main([*base, str(good), "--team", "team a", "--token", tokens["team a"]]) == 0
    assert "of team team-a, public accuracy 0.0000" in capsys.readouterr().out
    assert [e["event"] for e in audit_log(out)] == [*events, "submission"]


def test_cli_board_and_reveal(out: Path, tokens: dict, capsys) -> None:
    key = contest(out)
    send(out, "team a", tokens["team a"], answers(key, set(key.images)), NOON)
    assert cli.main(["--out", str(out)]) == 0
    text = capsys.readouterr().out
    zoo_board, _, board = text.partition("### cells: competition, public board")
    assert "team-a" not in zoo_board and "| 1 | team-a | 1.0000 |" in board
    assert "private" not in board
    assert cli.main(["--out", str(out), "--reveal", "--yes"]) == 0
    assert competition.load_settings(out).revealed
    assert "shake_up" in capsys.readouterr().out


class Terminal(io.StringIO):
    """Standard input that is a terminal, answering with its text."""

    def isatty(self) -> bool:
        return True


def test_the_reveal_asks_records_the_finals_and_freezes_everything(
    out: Path, tokens: dict, monkeypatch, capsys
) -> None:
    key = contest(out)
    first = send(out, "team a", tokens["team a"], answers(key, set()), NOON)
    best = send(out, "team a", tokens["team a"], answers(key, set(key.images)), NOON + 1)
    only = send(out, "team b", tokens["team b"], answers(key, set()), NOON + 2)
    reveal = ["--out", str(out), "--reveal"]
    assert cli.main(reveal) == 2  # no terminal to ask, no --yes
    assert "add --yes" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", Terminal("n\n"))
    assert cli.main(reveal) == 1
    assert not competition.load_settings(out).revealed
    assert not Layout(out).competition_final("cells").exists()
    monkeypatch.setattr("sys.stdin", Terminal("y\n"))
    assert cli.main(reveal) == 0
    assert competition.load_settings(out).revealed
    recorded = json.loads(Layout(out).competition_final("cells").read_text())
    assert recorded["final"] == {"team-a": best.id, "team-b": only.id}
    capsys.readouterr()

    # the finals stand as recorded: a selection written afterwards changes no board
    folder = competition.team_folder(out, "cells", "team a")
    (folder / "selected.json").write_text(json.dumps({"selected": first.id}))
    settings = competition.load_settings(out)
    table = competition.board(out, "cells", settings, key.public_set(0.5))
    assert table.set_index("team").loc["team-a", "selected"] == best.id
    # nothing more is taken, whatever settings the caller holds
    files = sorted(Layout(out).competition.rglob("*"))
    with pytest.raises(competition.SubmissionRefused, match="private scores are revealed"):
        send(out, "team b", tokens["team b"], answers(key, set(key.images)), NOON + 3)
    assert audit_log(out)[-1]["event"] == "rejected"
    audit = Layout(out).competition_audit.read_text()
    for change in (
        ["--public-share", "0.4"],
        ["--daily-limit", "9"],
        ["--deadline", "2030-01-01T00:00Z"],
    ):
        assert cli.main(["--out", str(out), "--competition", *change]) == 2
        assert "revealed, its settings and bundles are frozen" in capsys.readouterr().err
    assert cli.main([*reveal, "--yes"]) == 0  # a second reveal records nothing again
    assert sorted(Layout(out).competition.rglob("*")) == files
    assert Layout(out).competition_audit.read_text() == audit
    assert competition.load_settings(out) == settings


def test_no_submission_after_the_deadline(out: Path, tokens: dict, capsys) -> None:
    base = ["--out", str(out), "--competition", "--deadline"]
    for bad in ("tomorrow", "2027-01-31T23:59"):
        with pytest.raises(SystemExit):
            cli.main([*base, bad])
        assert "deadline" in capsys.readouterr().err
    deadline = NOON + 3600
    assert (
        cli.main([*base, time.strftime("%Y-%m-%dT%H:%M+02:00", time.gmtime(deadline + 7200))]) == 0
    )
    settings = competition.load_settings(out)
    assert settings.deadline == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(deadline))
    key = contest(out)
    send(out, "team a", tokens["team a"], answers(key, set()), deadline)
    with pytest.raises(competition.SubmissionRefused, match="closed at its deadline"):
        send(out, "team a", tokens["team a"], answers(key, set()), deadline + 1)
    assert len(competition.history(out, "cells", "team a")) == 1


def test_cli_turns_the_mode_on_and_keeps_one_key(out: Path, tmp_path: Path, capsys) -> None:
    assert cli.main(["--out", str(out), "--reveal"]) == 2
    assert "competition mode is off; turn it on with --competition" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        cli.main(["--out", str(out), "--competition", "--public-share", "1.5"])
    assert info.value.code == 2 and not Layout(out).competition_settings.exists()
    assert cli.main(["--out", str(out), "--competition", "--daily-limit", "3"]) == 0
    assert competition.load_settings(out) == Settings(daily_limit=3)
    assert cli.main(["--out", str(out), "--competition", "--bundle", str(tmp_path / "b")]) == 0
    salt = contest(out).salt
    assert cli.main(["--out", str(out), "--competition", "--bundle", str(tmp_path / "c")]) == 2
    assert "has a competition already" in capsys.readouterr().err
    assert contest(out).salt == salt and not (tmp_path / "c").exists()


# --- the app ---------------------------------------------------------------------------------


def test_the_server_takes_no_upload_over_the_checkers_limit(monkeypatch) -> None:
    root = Path(__file__).resolve().parents[1]
    config = tomllib.loads((root / ".streamlit" / "config.toml").read_text(encoding="utf-8"))
    assert config["server"]["maxUploadSize"] * 2**20 == MAX_BYTES
    monkeypatch.delenv("STREAMLIT_SERVER_MAX_UPLOAD_SIZE", raising=False)
    launched = wbczoo.board_environment()["STREAMLIT_SERVER_MAX_UPLOAD_SIZE"]
    assert int(launched) * 2**20 == MAX_BYTES
    guide = (root / "leaderboard" / "README.md").read_text(encoding="utf-8")
    assert f"at most {MAX_BYTES // 2**20} MB" in guide


def fingerprints_of(out: Path, set_name: str) -> frozenset[str]:
    source = json.loads((out / "submissions/cells/alpha-fast-s0/meta.json").read_text())["sets"]
    return set_fingerprints(Path(source[set_name]["root"]), answer_key(out, set_name))


def test_disclosure_goes_by_content_until_the_reveal(out: Path, tmp_path: Path, capsys) -> None:
    test, bccd = fingerprints_of(out, "test"), fingerprints_of(out, "bccd")
    assert disclosure(out).shows_truth(test)
    competition.save_settings(out, Settings())  # no bundle yet: which images is unknown
    assert not disclosure(out).shows_truth(bccd)
    organise(out, tmp_path / "bundle", capsys)
    rules = disclosure(out)
    assert rules.secret == test
    assert not rules.shows_truth(test) and rules.shows_truth(bccd)
    assert not rules.shows_truth(bccd | {min(test)})  # one shared image hides a set
    assert not rules.shows_truth(None)  # images not readable here
    # a key made before fingerprints were recorded: its images are fingerprinted
    path = Layout(out).competition_key("cells")
    data = json.loads(path.read_text())
    del data["fingerprints"]
    path.write_text(json.dumps(data))
    assert disclosure(out).secret == test
    competition.save_settings(out, Settings(revealed=True))
    assert disclosure(out).shows_truth(test)
    Layout(out).competition_settings.write_text("{")  # damaged: as if running
    assert not disclosure(out).shows_truth(test) and disclosure(out).shows_truth(bccd)


def open_app(out: Path, monkeypatch) -> AppTest:
    monkeypatch.setenv("WBCZOO_OUT", str(out))
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def frame(at: AppTest, column: str):
    """The first table drawn with ``column`` (AppTest does not expose a dataframe's key)."""
    return next(d.value for d in at.dataframe if column in d.value.columns)


def page_text(at) -> str:
    """Everything a page (or one of its parts) says in words and tables."""
    parts = [e.value for kind in ("markdown", "caption", "text", "title", "subheader", "info",
             "error", "success", "warning", "code", "json") for e in getattr(at, kind)]  # fmt: skip
    parts += [d.value.to_csv() for d in (*at.dataframe, *at.table)]
    parts += [m.value for m in at.metric]
    return "\n".join(str(p) for p in parts)


def seeds(at: AppTest) -> list[str | None]:
    """The Details page's seed choices (None: the configuration has one seed, no choice)."""
    try:
        return list(at.selectbox(key="detail_entry").options)
    except KeyError:
        return [None]


def mirror_set(out: Path, root: Path) -> list[str]:
    """The test images copied as PNGs under other names into ``root``, scored by alpha-fast-s0
    as a cross-lab set ``mirror``; their file names."""
    names = []
    for i, (image_id, label) in enumerate(answer_key(out).items()):
        copy = root / label / f"copy_{i:03d}.png"
        copy.parent.mkdir(parents=True, exist_ok=True)
        with Image.open(out.parent / "cells" / image_id) as image:
            image.save(copy)
        names.append(copy.name)
    entry = out / "submissions" / "cells" / "alpha-fast-s0"
    records = sorted(load_dataset("folder", root).records(), key=lambda r: r.id)
    preds = predictions([r.label for r in records], 0.5)
    write_submission(entry / "mirror.csv", [r.id for r in records], onehot(preds), CLASSES)
    meta = json.loads((entry / "meta.json").read_text())
    meta["sets"]["mirror"] = {"adapter": "folder", "root": str(root), "split": None}
    (entry / "meta.json").write_text(json.dumps(meta))
    return names


def open_details(at: AppTest, entry: str = "alpha-fast-s0") -> AppTest:
    open_page(at, "details")
    at.selectbox(key="detail_row").set_value(entry.rsplit("-", 1)[0]).run()
    at.selectbox(key="detail_entry").set_value(entry).run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def test_test_images_are_hidden_by_content_and_reference_zoos_with_them(
    out: Path, tokens, tmp_path: Path, monkeypatch
) -> None:
    """The test images under other names, as another set, show no labels either; and no
    reference zoo (PBC's test pages, an upload scored on PBC's test set) is reachable."""
    copies = mirror_set(out, tmp_path / "mirror")
    at = open_details(open_app(out, monkeypatch))
    text = page_text(at)
    assert "bccd images misclassified" in text and "mirror images misclassified" not in text
    assert len(at.table) == 1  # the bccd confusion matrix only
    assert not [name for name in copies if name in text]
    if references():
        assert not [r for r in at.sidebar.radio if r.key == "zoo"]
        assert REFERENCES_HIDDEN in [c.value for c in at.sidebar.caption]
    competition.reveal(out, NOON)
    at = open_details(open_app(out, monkeypatch))
    assert "mirror images misclassified" in page_text(at) and len(at.table) == 3
    if references():
        assert at.sidebar.radio(key="zoo").options[1].startswith("Reference")


def test_explanations_and_data_folders_are_hidden(out: Path, tokens, monkeypatch) -> None:
    """Grad-CAM sheets name test images and their classes; the test set's folder says which
    public set to match the bundle against."""
    sheet = Layout(out).explanations("cells", "alpha-fast-s0") / "gradcam-test.png"
    sheet.parent.mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(sheet)
    root = str(out.parent / "cells")
    at = open_details(open_app(out, monkeypatch))
    text = page_text(at)
    assert EXPLANATIONS_HIDDEN in text and root not in text and "pipeline.zoo" not in text
    assert len(at.image) == gallery_images(text)  # no explanation sheet
    competition.reveal(out, NOON)
    at = open_details(open_app(out, monkeypatch))
    text = page_text(at)
    assert EXPLANATIONS_HIDDEN not in text and root in text and ZOO_COMMAND in text
    assert len(at.image) == gallery_images(text) + 1  # the sheet is back


def gallery_images(text: str) -> int:
    """How many images the page's galleries say they show."""
    return sum(int(n) for n in re.findall(r"images misclassified; (\d+) shown", text))


def test_the_competition_page_fails_in_one_line(out: Path, tokens, monkeypatch) -> None:
    def broken(*_: object) -> None:
        raise OSError("/srv/secret/competition/cells/key.json: disk on fire")

    monkeypatch.setattr(competition, "board", broken)
    at = open_page(open_app(out, monkeypatch), "competition")
    assert not at.exception, [e.message for e in at.exception]
    failed = [e.value for e in at.error if "This page failed" in e.value]
    assert failed == ["This page failed (OSError); the host finds the details in the server's log."]
    assert "/srv/secret" not in page_text(at)


def test_every_page_hides_test_labels_and_private_scores(out: Path, tokens, monkeypatch) -> None:
    """Walk every configuration, seed and set of the Details page and the Competition page in
    competition mode: no test image's class or file name, no test confusion matrix or
    per-class table, no gallery of test mistakes, no private score."""
    key = contest(out)
    public, private = key.divide(0.5)
    right = set(public) | set(sorted(private)[:1])  # private accuracy 1 of 3: telltale 0.3333
    record = send(out, "team a", tokens["team a"], answers(key, right), NOON)
    assert record.private["accuracy"] == pytest.approx(1 / 3)
    test_files = [Path(i).name for i in answer_key(out)]
    at = open_page(open_app(out, monkeypatch), "details")
    pages = 0
    for config in at.selectbox(key="detail_row").options:
        at.selectbox(key="detail_row").set_value(config).run()
        for seed in seeds(at):
            if seed is not None:
                at.selectbox(key="detail_entry").set_value(seed).run()
            assert not at.exception
            text = page_text(at)
            assert "test images misclassified" not in text
            assert "bccd images misclassified" in text  # other labs' sets keep theirs
            assert not [f for f in test_files if f in text]
            assert "private_acc" not in text
            assert len(at.table) == 1  # the bccd confusion matrix only
            per_class = [d for d in at.dataframe if "specificity" in d.value.columns]
            assert len(per_class) == 1
            gallery = re.findall(r"bccd images misclassified; (\d+) shown", text)
            assert len(at.image) == int(gallery[0])
            pages += 1
    assert pages >= 4
    open_page(at, "competition")
    at.text_input(key="team").set_value("team a").run()
    at.text_input(key="token").set_value(tokens["team a"]).run()
    assert frame(at, "submission")["public_acc"].tolist() == [1.0]
    text = page_text(at.main)
    assert "1.0" in text and "0.3333" not in text and "33.3" not in text
    assert "private_acc" not in text and not [f for f in test_files if f in text]


def test_app_needs_a_token_submits_limits_and_reveals(out: Path, tokens, monkeypatch) -> None:
    key = contest(out)
    public, _ = key.divide(0.5)
    at = open_page(open_app(out, monkeypatch), "competition")
    assert any("Competition" in m.value and "public part" in m.value for m in at.markdown)
    at.text_input(key="team").set_value("team a").run()
    at.text_input(key="token").set_value(tokens["team b"]).run()
    assert "unknown team or wrong token" in at.error[0].value
    assert not at.file_uploader and not [d for d in at.dataframe if "submission" in d.value]
    at.run().run()  # a rerun tries no second login with the same token
    assert "unknown team or wrong token" in at.error[0].value
    assert [e["event"] for e in audit_log(out)].count("login_failed") == 1
    at.text_input(key="token").set_value(tokens["team a"]).run()
    at.file_uploader(key="upload").set_value(("p.csv", answers(key, set(public)), "text/csv"))
    at.run()
    assert not at.error, [e.value for e in at.error]
    at.button(key="submit").click().run()
    first = competition.history(out, "cells", "team a")[0].id
    assert [s.value for s in at.success] == [
        f"p.csv: submission {first} of team team-a, public accuracy 1.0000."
    ]
    assert "private_acc" not in frame(at, "team").columns
    assert "1 of 2 submissions used today (UTC)." in [c.value for c in at.caption]
    all_right = answers(key, set(key.images))
    at.file_uploader(key="upload").set_value(("q.csv", all_right, "text/csv")).run()
    at.button(key="submit").click().run()
    at.file_uploader(key="upload").set_value(("r.csv", all_right, "text/csv")).run()
    at.button(key="submit").click().run()
    assert "team-a has used all 2 submissions of today" in at.error[0].value
    # the answer key's own ids, class in the name, are not the competition's
    real = answer_key(out)
    from_names = csv_bytes(list(real), onehot([i.split("/")[-2] for i in real]))
    at.file_uploader(key="upload").set_value(("s.csv", from_names, "text/csv")).run()
    assert "ids missing" in at.error[0].value

    _, q_id = (r.id for r in competition.history(out, "cells", "team a"))
    assert frame(at, "submission")["selected"].tolist() == [True, False]
    at.selectbox(key="final-team-a").set_value(q_id).run()
    assert frame(at, "submission")["selected"].tolist() == [False, True]

    assert cli.main(["--out", str(out), "--reveal", "--yes"]) == 0
    at = open_page(open_app(out, monkeypatch), "competition")
    board = frame(at, "team")
    assert (board.loc[0, "selected"], board.loc[0, "private_acc"]) == (q_id, 1.0)
    assert board.loc[0, "shake_up"] == 0
    open_page(at, "details").selectbox(key="detail_row").set_value("alpha-fast").run()
    assert "test images misclassified" in page_text(at)  # revealed: the gallery is back
    open_page(at, "competition")
    at.text_input(key="team").set_value("team a").run()
    at.text_input(key="token").set_value(tokens["team a"]).run()
    assert not at.file_uploader and "Submissions are closed" in at.info[0].value
