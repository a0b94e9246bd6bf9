"""Deployment: production settings, static files, `.env.example`, the version, and the deploy files.

The Dockerfile is built and its image run the way compose.yaml runs it (migrate, web, worker) by
tests/install/test_container_image.py, with Debian's podman over a base image made from Debian's packages (no
registry is reachable here, so neither the `python` base image nor the compose file's PostgreSQL and Redis images
can be pulled). The systemd units are not started (there is no systemd here). The tests below keep every command
those files run equal to the Procfile's, which `make run`, the scale-out test and the runtime-install test run.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path
from urllib.parse import urljoin

import pytest
import yaml
from django.conf import settings
from django.core.management import call_command
from django.test import Client, override_settings

ROOT = Path(__file__).resolve().parent.parent
# clients/ holds a separate package (the Python client): its own version, and the variables a client user sets.
PRODUCT_SKIP = {"tests", "bench", "var", "build", "node_modules", "clients"}

# Warnings `check --deploy` keeps raising with production settings; README's "Deploying" explains each.
EXPLAINED_DEPLOY_WARNINGS = {
    "security.W002",
    "security.W003",
    "security.W005",
    "security.W008",
    "security.W021",
}
PRODUCTION = {
    "SECRET_KEY": "prod-like-" + "k7Qz9xW2mR4tY6uP8sD1fG3hJ5lZ0cV" * 2,
    "ALLOWED_HOSTS": "spindle.example.com",
    "CSRF_TRUSTED_ORIGINS": "https://spindle.example.com",
    "SPINDLE_TRUSTED_PROXIES": "127.0.0.1",
    "SESSION_COOKIE_SECURE": "1",
    "CSRF_COOKIE_SECURE": "1",
}


def production_env(**changes: str | None) -> dict[str, str]:
    """A production-like environment: this run's services, PRODUCTION, no test switches; None drops a name."""
    keep = ("PATH", "HOME", "LANG", "DATABASE_URL", "CELERY_BROKER_URL", "CACHE_URL")
    env = {name: os.environ[name] for name in keep if name in os.environ}
    env.update(PRODUCTION, DJANGO_SETTINGS_MODULE="config.settings", PYTHONDONTWRITEBYTECODE="1")
    for name, value in changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def settings_under(env: dict[str, str], *names: str) -> subprocess.CompletedProcess[str]:
    """The settings module loaded in a fresh process under `env`; stdout holds the named settings as JSON."""
    script = (
        "import json, sys\nfrom django.conf import settings\n"
        "print(json.dumps({n: getattr(settings, n) for n in sys.argv[1:]}))"
    )
    return subprocess.run(
        [sys.executable, "-c", script, *names], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def values_under(env: dict[str, str], *names: str) -> dict[str, object]:
    done = settings_under(env, *names)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


# --- settings for production -----------------------------------------------------------------------------------


def test_check_deploy_with_production_settings_raises_only_explained_warnings() -> None:
    done = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy"],
        cwd=ROOT,
        env=production_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    raised = set(re.findall(r"\(([a-z_]+\.[CEW]\d{3})\)", done.stdout + done.stderr))
    assert raised <= EXPLAINED_DEPLOY_WARNINGS, done.stdout + done.stderr
    readme = (ROOT / "README.md").read_text()
    assert all(f"`{warning}`" in readme for warning in EXPLAINED_DEPLOY_WARNINGS)


def test_production_defaults_are_strict() -> None:
    names = ("ALLOWED_HOSTS", "BILLING_SUCCESS_URL", "BILLING_CANCEL_URL", "SECURE_HSTS_SECONDS")
    production = values_under(production_env(ALLOWED_HOSTS=None), *names)
    assert production["ALLOWED_HOSTS"] == ["localhost", "127.0.0.1", "[::1]"]
    assert production["BILLING_SUCCESS_URL"] == production["BILLING_CANCEL_URL"] == ""
    assert production["SECURE_HSTS_SECONDS"] == 365 * 24 * 3600
    debug = values_under(production_env(ALLOWED_HOSTS=None, DEBUG="1"), *names)
    assert debug["ALLOWED_HOSTS"] == ["*"]
    assert debug["SECURE_HSTS_SECONDS"] == 0
    assert str(debug["BILLING_SUCCESS_URL"]).startswith("http://localhost:")
    listed = values_under(production_env(ALLOWED_HOSTS="a.example,b.example"), "ALLOWED_HOSTS")
    assert listed["ALLOWED_HOSTS"] == ["a.example", "b.example"]


def test_stripe_without_return_urls_refuses_to_start() -> None:
    refused = settings_under(production_env(STRIPE_SECRET_KEY="sk_live_example"), "STRIPE_SECRET_KEY")
    assert refused.returncode != 0
    assert "BILLING_SUCCESS_URL and BILLING_CANCEL_URL must be set" in refused.stderr
    urls = {"BILLING_SUCCESS_URL": "https://x.example/ok", "BILLING_CANCEL_URL": "https://x.example/back"}
    values = values_under(production_env(STRIPE_SECRET_KEY="sk_live_example", **urls), *urls)
    assert values == urls


def test_version_lives_in_pyproject_only() -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert settings.VERSION == version
    copies = [str(path) for path in product_files(".py") if f'"{version}"' in path.read_text()]
    assert copies == []


# --- static files ----------------------------------------------------------------------------------------------


def test_static_files_are_served_from_the_apps_in_tests() -> None:
    response = Client().get("/static/admin/css/base.css")
    assert response.status_code == 200
    assert b"".join(response.streaming_content)


@pytest.mark.slow
def test_collected_static_files_are_cached_for_a_year_and_gzipped(tmp_path: Path) -> None:
    collected = {
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
    }
    with override_settings(
        STATIC_ROOT=tmp_path, STORAGES=collected, WHITENOISE_USE_FINDERS=False, WHITENOISE_AUTOREFRESH=False
    ):
        # What `make run` and the image build do: the Swagger UI's and the admin's files, hashed and compressed.
        call_command("collectstatic", interactive=False, verbosity=0)
        client = Client()
        html = client.get("/docs").content.decode()
        assets = [url for url in re.findall(r'(?:src|href)="([^"]+)"', html) if "/static/" in url]
        assert any(url.endswith(".js") for url in assets), html
        for url in assets:
            response = client.get(urljoin("/docs", url), HTTP_ACCEPT_ENCODING="gzip, br")
            assert response.status_code == 200, url
            assert "max-age=315360000" in response["Cache-Control"], (url, response["Cache-Control"])
            assert "immutable" in response["Cache-Control"]
            body = b"".join(response.streaming_content)
            if url.endswith((".js", ".css")):
                assert response["Content-Encoding"] == "gzip", url
                assert gzip.decompress(body)
        plain = client.get(urljoin("/docs", next(url for url in assets if url.endswith(".js"))))
        assert "Content-Encoding" not in plain
        assert "Accept-Encoding" in plain["Vary"]


# --- .env.example ----------------------------------------------------------------------------------------------

ENV_READS = (
    # env("X"), env.int("X"), env.db("X") ... (django-environ, config/settings.py)
    re.compile(r"""\benv(?:\.\w+)?\(\s*["']([A-Z][A-Z0-9_]*)["']"""),
    re.compile(r"""\bos\.environ(?:\.(?:get|setdefault|pop))?\s*[\[(]\s*["']([A-Z][A-Z0-9_]*)["']"""),
    re.compile(r"""\bos\.getenv\(\s*["']([A-Z][A-Z0-9_]*)["']"""),
)
SHELL_READ = re.compile(r"\$\{([A-Z][A-Z0-9_]*)")


def product_files(suffix: str) -> list[Path]:
    """The product's files with this suffix: everything but tests, benchmarks, virtualenvs and runtime files."""
    found = []
    for folder, subfolders, files in os.walk(ROOT):
        subfolders[:] = [name for name in subfolders if name not in PRODUCT_SKIP and not name.startswith(".")]
        found += [Path(folder) / name for name in files if name.endswith(suffix)]
    return found


def variables_the_code_reads() -> set[str]:
    names: set[str] = set()
    for path in product_files(".py"):
        text = path.read_text()
        for pattern in ENV_READS:
            names.update(pattern.findall(text))
    # The processes' command lines and their runner expand variables of their own (HOST, PORT, ...).
    for path in [ROOT / "Procfile", *(ROOT / "bin").iterdir()]:
        names.update(SHELL_READ.findall(path.read_text()))
    return names


def test_env_example_lists_every_variable_the_code_reads() -> None:
    listed = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", (ROOT / ".env.example").read_text(), re.M))
    read = variables_the_code_reads()
    assert {"DATABASE_URL", "SECRET_KEY", "HOST", "SPINDLE_STOP_GRACE_S"} <= read  # the scan itself works
    assert sorted(read - listed) == [], "read by the code but missing from .env.example"
    assert sorted(listed - read) == [], "listed in .env.example but read nowhere"


# --- Dockerfile, compose.yaml, systemd units: the Procfile's commands --------------------------------------------


def procfile() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict((name, command.strip()) for name, command in (line.split(":", 1) for line in lines if line))


def shell_command(argv: list[str]) -> str:
    """The command of `sh -c 'exec <command>'` (the runner execs each Procfile line the same way)."""
    assert argv[0] in ("sh", "/bin/sh") and argv[1] == "-c", argv
    assert argv[2].startswith("exec "), argv
    return argv[2].removeprefix("exec ")


def test_dockerfile_runs_the_web_line_as_a_non_root_user() -> None:
    lines = (ROOT / "Dockerfile").read_text().splitlines()
    cmd = next(line for line in lines if line.startswith("CMD "))
    assert shell_command(json.loads(cmd.removeprefix("CMD "))) == procfile()["web"]
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
    assert lines.index(f"USER {users[-1]}") > max(
        i for i, line in enumerate(lines) if line.startswith("RUN ")
    )
    assert next(line for line in lines if line.startswith("FROM ")).split()[1].startswith("python:")


def test_compose_runs_the_procfile_lines_beside_postgres_and_redis() -> None:
    services = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]
    assert {"web", "worker", "postgres", "redis"} <= set(services)
    for name, command in procfile().items():
        argv = [part.replace("$$", "$") for part in services[name]["command"]]
        assert shell_command(argv) == command, name
    for name in ("web", "worker"):
        env = services[name]["environment"]
        assert env["DATABASE_URL"].startswith("postgres://") and env["CELERY_BROKER_URL"].startswith(
            "redis://"
        )
    grace_s = int(services["worker"]["stop_grace_period"].removesuffix("s"))
    assert grace_s > settings.SPINDLE_DELIVERY_DRAIN_S


def test_systemd_units_run_the_procfile_lines() -> None:
    for name, command in procfile().items():
        unit = (ROOT / "deploy" / "systemd" / f"spindle-{name}.service").read_text()
        directives = dict(
            line.split("=", 1) for line in unit.splitlines() if "=" in line and not line.startswith("#")
        )
        assert shell_command(shlex.split(directives["ExecStart"].replace("$$", "$"))) == command, name
        assert directives["User"] not in ("root", "0")
        if name == "worker":
            assert int(directives["TimeoutStopSec"]) > settings.SPINDLE_DELIVERY_DRAIN_S
