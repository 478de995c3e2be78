"""The ops console: the "Checklists" and "Backups" pages of the Airflow UI, their CSV export and
the Prometheus `/metrics` text (plugins/gravitypm_ops_console.py mounts them at /gravitypm).

Plain functions: data in (audit records, vault manifests, status.json), HTML / CSV / Prometheus
text out. Server-rendered, no JavaScript. Every value shown is HTML-escaped; links are rendered
only for http(s) URLs; CSV cells that a spreadsheet would run as a formula are defused. Nothing
shown carries a secret: records and manifests hold none, and error text is scrubbed.

Rendering (`render_*`, `records_csv`, `*_metrics`) works on plain lists and dicts; the few functions
that read the vault (`load_*`, `read_status`) take a Vault; the views the plugin serves (`*_view`,
`metrics_text`) take a function that opens the vault, so a bad config or an unreachable S3 becomes
an error box (or `gravitypm_vault_up 0`), never a stack trace. An object that is read but cannot be
used — status.json, a manifest, a verification or audit record that is not JSON, not an object or
lacks a field the page needs — is left out and named in an error box (`html.Problem`) on a page that
still answers 200, and exported as `gravitypm_vault_object_error{key="..."} 1` by /metrics.
"""
