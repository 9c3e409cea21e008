"""Models and migrations agree: a capability added to translation.Capabilities needs its migration."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command


@pytest.mark.django_db
def test_no_model_change_lacks_a_migration() -> None:
    out = StringIO()
    try:
        call_command("makemigrations", "--check", "--dry-run", stdout=out, stderr=out)
    except SystemExit as exc:  # --check exits non-zero when a migration is missing
        pytest.fail(f"missing migration (run: DEBUG=1 python manage.py makemigrations):\n{out.getvalue()}"
                    f" exit {exc.code}")
