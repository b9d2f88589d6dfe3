"""The keys the editors' tests configure (see conftest.py)."""

ADMIN_KEY = "admin-secret"
PREVIEW_TOKEN = "preview-secret"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
PREVIEW = {"Authorization": f"Bearer {PREVIEW_TOKEN}"}
