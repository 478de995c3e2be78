"""The vault (S3 bucket + prefix): key layout, upload/download streams, the write-once store, retention. Only this package touches the S3 client."""
