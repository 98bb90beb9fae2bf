"""The Streamlit leaderboard app: ``streamlit run leaderboard/app.py``; one module per tab."""
