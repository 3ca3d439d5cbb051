#!/bin/sh
# One-shot MinIO setup (compose service minio-init, image minio/mc): buckets, a scoped policy and the
# DataFlux service account. Idempotent: safe on every `docker compose up`.
set -eu

: "${MINIO_ROOT_USER:?}" "${MINIO_ROOT_PASSWORD:?}"
: "${DATAFLUX_S3_BUCKET:?}" "${DAGSTER_COMPUTE_LOG_BUCKET:?}"
: "${DATAFLUX_S3_ACCESS_KEY_ID:?}" "${DATAFLUX_S3_SECRET_ACCESS_KEY:?}"

mc alias set local http://minio:9000 "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD"

# Data bucket: store/ (landing/ and objects/ with thumbnails) and lance/ (LanceDB tables).
mc mb --ignore-existing "local/$DATAFLUX_S3_BUCKET"
# Step logs live apart so an expiry rule can drop them without touching media.
mc mb --ignore-existing "local/$DAGSTER_COMPUTE_LOG_BUCKET"
# Versioning lets a restore reach objects overwritten or deleted after a backup.
mc version enable "local/$DATAFLUX_S3_BUCKET"

policy=/tmp/dataflux-policy.json
cat >"$policy" <<JSON
{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Effect": "Allow",
      "Action": ["s3:*"],
      "Resource": [
        "arn:aws:s3:::$DATAFLUX_S3_BUCKET", "arn:aws:s3:::$DATAFLUX_S3_BUCKET/*",
        "arn:aws:s3:::$DAGSTER_COMPUTE_LOG_BUCKET", "arn:aws:s3:::$DAGSTER_COMPUTE_LOG_BUCKET/*"
      ]
    }
  ]
}
JSON
mc admin policy create local dataflux "$policy"

# The services use their own key pair, never the root credentials.
mc admin user add local "$DATAFLUX_S3_ACCESS_KEY_ID" "$DATAFLUX_S3_SECRET_ACCESS_KEY"
# On a rerun MinIO answers "The specified policy change is already in effect": that is success.
if ! out="$(mc admin policy attach local dataflux --user "$DATAFLUX_S3_ACCESS_KEY_ID" 2>&1)"; then
  case "$out" in
    *"already in effect"*) ;;
    *) echo "$out" >&2; exit 1 ;;
  esac
fi
echo "minio-init: buckets $DATAFLUX_S3_BUCKET and $DAGSTER_COMPUTE_LOG_BUCKET ready"
