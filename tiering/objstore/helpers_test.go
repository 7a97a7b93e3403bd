package objstore_test

import (
	"github.com/minio/minio-go/v7"

	"github.com/strata-stream/strata/tiering/objstore"
)

func bucketOf(s *objstore.S3) string { return s.Bucket() }

func minioStatOpts() minio.StatObjectOptions { return minio.StatObjectOptions{} }
