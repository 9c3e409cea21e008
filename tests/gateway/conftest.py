"""Fixtures of the gateway's tests."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client


@pytest.fixture
def staff(db: None) -> Client:
    """A client logged into the admin as a superuser."""
    client = Client()
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    return client
