import pytest


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    # PBKDF2 at Django's default cost takes ~0.5 s a hash here; the hasher is not what these tests check.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
