# Sourced by the benchmark scripts: starts the pinned MinIO (from `make
# tools`, or $STRATA_MINIO_BIN) on 127.0.0.1:19900 with its data under
# $work/minio and a bucket named bench, and exports the credentials. The
# caller's EXIT trap stops it.
MINIO=${STRATA_MINIO_BIN:-$(ls -d "$HOME"/.cache/strata-tools/minio-*/minio | tail -1)}
export AWS_ACCESS_KEY_ID=strata-bench AWS_SECRET_ACCESS_KEY=strata-bench-secret AWS_REGION=us-east-1
MINIO_ROOT_USER=$AWS_ACCESS_KEY_ID MINIO_ROOT_PASSWORD=$AWS_SECRET_ACCESS_KEY MINIO_BROWSER=off \
  "$MINIO" server --quiet --address 127.0.0.1:19900 --console-address 127.0.0.1:19901 "$work/minio" >"$work/minio.log" 2>&1 &
# /minio/health/cluster answers once the object layer is up.
for _ in $(seq 100); do curl -sf 127.0.0.1:19900/minio/health/cluster && break; sleep 0.2; done
mkdir -p "$work/minio/bench"   # the bucket (MinIO's single-drive layout)
