import pytest

from gravitypm_ops.airflow.alerts import Severity
from gravitypm_ops.redact import scrub


@pytest.mark.parametrize(
    "text, secret",
    [
        ("connect failed: mongodb://backup:s3cr3t@db:27017/admin", "s3cr3t"),
        ("error for https://user:pa55@minio:9000/bucket", "pa55"),
        ("bad config password=hunter2 retry", "hunter2"),
        ("aws_secret_access_key: 'AbCdEf123'", "AbCdEf123"),
        ("POST https://hooks.slack.com/services/T0123/B0456/XyZtoken789 failed", "XyZtoken789"),
    ],
)
def test_scrub_removes_credentials(text, secret):
    cleaned = scrub(text)
    assert secret not in cleaned
    assert "***" in cleaned


def test_scrub_keeps_ordinary_text():
    text = "disk /opt/gravitypm has 12% free; https://api.gravitypm.com/health answered 503"
    assert scrub(text) == text


def test_severities_are_the_runbooks():
    assert [s.value for s in Severity] == ["Critical", "Warning", "Info"]
