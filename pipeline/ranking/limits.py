"""The size limit of an uploaded submission: the checker's and the app server's, in one place.

Light on purpose: the ``wbczoo-board`` launcher reads it without importing the scoring code.
"""

UPLOAD_MB = 20  # Streamlit's server.maxUploadSize counts in these (2**20 bytes)
MAX_BYTES = UPLOAD_MB * 2**20
