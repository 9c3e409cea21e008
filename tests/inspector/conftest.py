"""Fixtures of the inspector's tests."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client


@pytest.fixture
def staff(gateway_setup: str) -> Client:
    """A client logged into the admin as a superuser, with the test gateway configured."""
    client = Client()
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    return client
