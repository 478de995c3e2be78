"""The vault (S3 bucket + prefix). Only this package touches the S3 client; others get VaultError.

layout     keys, ids, manifest fields, errors        objects    single objects: write-once JSON, reads, lists, locks
store      Vault: backups written, listed, resolved  streams    multipart upload / verified download streams
leases     retention leases of restores and drills   retention  the pure policy and its run on a vault
hygiene    bucket settings, encryption at rest       transfer   copying artifacts between vaults
open       S3 clients from Airflow connections, the primary / off-site vault, access checks
"""
