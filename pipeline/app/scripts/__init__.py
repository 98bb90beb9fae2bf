"""The scripts Streamlit runs: ``wbczoo_board`` (the entry of an installed app) and one per page
(``pipeline.app.main.PAGES``); never imported."""
