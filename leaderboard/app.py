"""The leaderboard app in a checkout: ``streamlit run leaderboard/app.py -- --out DIR`` (the
code is ``pipeline.app``; installed, ``wbczoo-board`` runs the same)."""

from pipeline.app.main import main

main()
