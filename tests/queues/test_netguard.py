from __future__ import annotations

import pytest
from django.test import override_settings

from config.exceptions import ValidationFailed
from config.netguard import TargetRefused, address_allowed, check_resolved, validate_target_url
from queues.models import Queue

from .conftest import PUBLIC_URL

# Not for the guard itself: the shared autouse cache fixture needs the database in embedded (SQLite) mode.
pytestmark = pytest.mark.django_db

REFUSED_BY_DEFAULT = [
    "http://127.0.0.1/hook",
    "http://localhost:8080/hook",
    "http://10.0.0.1/hook",
    "http://172.16.5.4/hook",
    "http://192.168.1.1/hook",
    "http://100.64.0.1/hook",
    "http://[::1]/hook",
    "http://[fc00::1]/hook",
    "http://[::ffff:127.0.0.1]/hook",
    "http://0.0.0.0/hook",
    "http://224.0.0.1/hook",
    "http://240.0.0.1/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://[fe80::1]/hook",
    "http://[fd00:ec2::254]/hook",
]
ALWAYS_REFUSED = [
    "http://169.254.169.254/latest/meta-data/",
    "http://169.254.1.1/",
    "http://[fe80::1]/hook",
    "http://[fd00:ec2::254]/hook",
    "http://[::ffff:169.254.169.254]/",
]


@override_settings(SPINDLE_ALLOW_PRIVATE_TARGETS=False)
@pytest.mark.parametrize("url", REFUSED_BY_DEFAULT)
def test_private_targets_refused_by_default(url):
    with pytest.raises(ValidationFailed) as info:
        validate_target_url(url, field="endpoint.url")
    assert list(info.value.details) == ["endpoint.url"]


@override_settings(SPINDLE_ALLOW_PRIVATE_TARGETS=True)
@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:9000/hook", "http://localhost/x", "http://10.0.0.1/", "http://[::1]/"]
)
def test_private_targets_allowed_when_opted_in(url):
    assert validate_target_url(url) == url


@override_settings(SPINDLE_ALLOW_PRIVATE_TARGETS=True)
@pytest.mark.parametrize("url", ALWAYS_REFUSED)
def test_link_local_and_metadata_refused_even_when_opted_in(url):
    with pytest.raises(ValidationFailed):
        validate_target_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://93.184.215.14/",
        "file:///etc/passwd",
        "gopher://93.184.215.14/",
        "https://user:pw@93.184.215.14/",
        "https://@93.184.215.14/",
        "https:///path",
        "https://",
        "https://93.184.215.14:99999/",
        "https://93.184.215.14/a b",
        "https://" + "a" * 2049,
        "https://no-such-host.invalid/",
        "",
    ],
)
def test_malformed_or_unresolvable_urls_refused(url):
    with pytest.raises(ValidationFailed) as info:
        validate_target_url(url)
    assert info.value.details["url"]


def test_public_address_allowed():
    assert validate_target_url(PUBLIC_URL) == PUBLIC_URL
    assert validate_target_url("http://[2606:4700:4700::1111]/x") == "http://[2606:4700:4700::1111]/x"


def test_address_allowed_reads_setting_at_call_time():
    with override_settings(SPINDLE_ALLOW_PRIVATE_TARGETS=False):
        assert not address_allowed("127.0.0.1")
        assert not address_allowed("10.1.2.3")
        assert address_allowed("93.184.215.14")
    with override_settings(SPINDLE_ALLOW_PRIVATE_TARGETS=True):
        assert address_allowed("127.0.0.1")
        assert address_allowed("10.1.2.3")
        assert not address_allowed("169.254.169.254")
        assert not address_allowed("fd00:ec2::254")
        assert not address_allowed("fe80::1%eth0")
    assert not address_allowed("not-an-ip")


def test_check_resolved():
    with override_settings(SPINDLE_ALLOW_PRIVATE_TARGETS=False):
        with pytest.raises(TargetRefused):
            check_resolved("localhost")
        assert check_resolved("93.184.215.14") == ["93.184.215.14"]
    with override_settings(SPINDLE_ALLOW_PRIVATE_TARGETS=True):
        assert check_resolved("localhost") == ["127.0.0.1"]
        with pytest.raises(TargetRefused):
            check_resolved("169.254.169.254")
    with pytest.raises(TargetRefused):
        check_resolved("no-such-host.invalid")


@override_settings(SPINDLE_ALLOW_PRIVATE_TARGETS=False)
@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://localhost/",
        "http://10.0.0.1/",
        "http://[::1]/",
        "http://169.254.169.254/",
    ],
)
def test_queue_endpoint_ssrf_is_400(api_client, workspace, url):
    response = api_client.post("/v1/queues", {"name": "q", "endpoint": {"url": url}}, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert error["details"]["endpoint"]["url"]
    assert not Queue.objects.filter(workspace=workspace).exists()


@override_settings(SPINDLE_ALLOW_PRIVATE_TARGETS=True)
def test_queue_endpoint_private_allowed_when_opted_in_but_metadata_never(api_client, workspace):
    response = api_client.post(
        "/v1/queues", {"name": "q", "endpoint": {"url": "http://127.0.0.1:9/"}}, format="json"
    )
    assert response.status_code == 201
    response = api_client.patch(
        "/v1/queues/q", {"endpoint": {"url": "http://169.254.169.254/"}}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["details"]["endpoint"]["url"]
    assert Queue.objects.get(workspace=workspace, name="q").endpoint["url"] == "http://127.0.0.1:9/"


def test_the_delivery_time_check_follows_the_setting_although_it_is_cached():
    from config.outbound import host_refused

    url = "http://10.1.2.3:8080/hook"
    with override_settings(SPINDLE_ALLOW_PRIVATE_TARGETS=False):
        assert host_refused(url) == "10.1.2.3 is a refused address"
    with override_settings(SPINDLE_ALLOW_PRIVATE_TARGETS=True):
        assert host_refused(url) is None
        assert host_refused("http://169.254.169.254/latest") == "169.254.169.254 is a refused address"
    with override_settings(SPINDLE_ALLOW_PRIVATE_TARGETS=False):
        assert host_refused(url) == "10.1.2.3 is a refused address"
        assert host_refused("ftp://example.com/x") == "invalid URL"
