"""What ``wbczoo-board`` runs: the app as installed (a checkout runs ``leaderboard/app.py``)."""

from pipeline.app.main import main

main()
