"""TLS evidence: certificate validity read from the live endpoints."""

from __future__ import annotations

import logging
import socket
import ssl
from datetime import UTC, datetime

from gravitypm_ops.checklists.evidence.base import FAILED, PASSED, WARNING, Evidence, combine
from gravitypm_ops.config.checklists import settings_of, tls_endpoints

log = logging.getLogger(__name__)


def fetch_certificate(host: str, port: int, *, ca_file: str = "", timeout: float = 10.0) -> dict:
    """Connect, verify the chain and host name, and read the certificate's expiry.

    Returns {"host", "port", "valid": bool, "not_after": ISO | None, "error": str | None, ...}."""
    context = ssl.create_default_context()
    if ca_file:
        context.load_verify_locations(cafile=ca_file)
    found = {"host": host, "port": port, "valid": False, "not_after": None, "error": None}
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            with context.wrap_socket(sock, server_hostname=host) as tls:
                cert = tls.getpeercert()
    except ssl.SSLCertVerificationError as err:
        found["error"] = f"certificate not valid: {err.verify_message}"
        found["not_after"] = _unverified_not_after(host, port, timeout)
        return found
    except (OSError, ssl.SSLError) as err:
        found["error"] = f"unreachable: {type(err).__name__}: {err}"
        return found
    not_after = datetime.fromtimestamp(ssl.cert_time_to_seconds(cert["notAfter"]), UTC)
    subject = dict(x[0] for x in cert.get("subject", ()))
    issuer = dict(x[0] for x in cert.get("issuer", ()))
    found.update(valid=True, not_after=not_after.isoformat(), subject=subject.get("commonName"),
                 issuer=issuer.get("organizationName") or issuer.get("commonName"))
    return found


def _unverified_not_after(host: str, port: int, timeout: float) -> str | None:
    """The expiry of a certificate that failed verification (to tell 'expired' from 'untrusted')."""
    from cryptography import x509

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            with context.wrap_socket(sock, server_hostname=host) as tls:
                der = tls.getpeercert(binary_form=True)
        return x509.load_der_x509_certificate(der).not_valid_after_utc.isoformat()
    except (OSError, ssl.SSLError, ValueError):
        return None


def judge_certificates(certs: list[dict], warning_days: int, now: datetime) -> Evidence:
    if not certs:
        return Evidence(WARNING, "no TLS endpoint to check (health_urls are not https; set checklists.tls_endpoints)",
                        {"endpoints": []})
    parts, expiring = [], []
    for cert in certs:
        name = f"{cert['host']}:{cert['port']}"
        days = None
        if cert["not_after"]:
            days = (datetime.fromisoformat(cert["not_after"]) - now).total_seconds() / 86400
            cert["days_left"] = round(days, 1)
        if not cert["valid"]:
            parts.append((FAILED, f"{name}: {cert['error']}"
                          + (f" (expires {cert['not_after'][:10]})" if cert["not_after"] else "")))
        elif days < warning_days:
            expiring.append(f"{name} expires in {days:.0f} days ({cert['not_after'][:10]})")
            parts.append((WARNING, f"{name}: expires in {days:.0f} days, under {warning_days}"))
        else:
            parts.append((PASSED, f"{name}: valid for {days:.0f} more days"))
    alert = None
    if expiring or any(not c["valid"] for c in certs):
        bad = expiring + [f"{c['host']}:{c['port']} {c['error']}" for c in certs if not c["valid"]]
        alert = "TLS certificate problem (runbook: certificate expiration < 30 days is Critical): " + "; ".join(bad)
    return combine(parts, {"endpoints": certs, "warning_days": warning_days}, alert=alert)


def tls_expiry(cfg, options: dict, now: datetime) -> Evidence:
    """Each TLS endpoint's certificate, read from the live endpoint."""
    settings = settings_of(cfg)
    certs = [
        fetch_certificate(host, port, ca_file=settings["tls_ca_file"], timeout=settings["tls_timeout_seconds"])
        for host, port in tls_endpoints(cfg)
    ]
    return judge_certificates(certs, settings["tls_warning_days"], now)
