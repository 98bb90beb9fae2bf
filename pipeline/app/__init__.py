"""The leaderboard app (Streamlit), the layer above the library: ``main`` draws the sidebar and
routes to one page per module; nothing in ``pipeline`` imports it."""
