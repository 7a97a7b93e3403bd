package objstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"golang.org/x/sync/errgroup"
)

// S3Config configures an S3 store. It works for AWS S3 and for
// S3-compatible servers such as MinIO (Endpoint + PathStyle).
type S3Config struct {
	Bucket string
	// Prefix is prepended (with a '/') to every key; empty for none.
	Prefix string
	// Endpoint overrides the service URL, e.g. http://127.0.0.1:9000.
	Endpoint string
	// Region (default us-east-1, or AWS_REGION).
	Region string
	// PathStyle addresses buckets as endpoint/bucket (MinIO) instead of
	// bucket.endpoint.
	PathStyle bool
	// AccessKey and SecretKey are static credentials; when empty the
	// standard AWS chain is used (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY,
	// shared config and credentials files, web identity, IMDS).
	AccessKey, SecretKey string
	// PartSize is the multipart part size: larger objects are uploaded in
	// parts, PartConcurrency at a time (defaults 64 MiB, so a sealed segment
	// of the default size is one PUT, and 4).
	PartSize        int
	PartConcurrency int
	// MaxAttempts bounds the SDK's own retries per request (default 3);
	// callers retry further on ErrSlowDown and ErrUnavailable.
	MaxAttempts int
}

// S3 is a Store in an S3 bucket.
type S3 struct {
	cfg    S3Config
	client *s3.Client
}

// NewS3 returns a store on cfg.Bucket. It does not contact the service.
func NewS3(ctx context.Context, cfg S3Config) (*S3, error) {
	if cfg.Bucket == "" {
		return nil, errors.New("objstore: s3: no bucket")
	}
	cfg.Prefix = strings.Trim(cfg.Prefix, "/")
	if cfg.Prefix != "" {
		if err := ValidateKey(cfg.Prefix); err != nil {
			return nil, fmt.Errorf("objstore: s3 prefix: %w", err)
		}
	}
	if cfg.PartSize <= 0 {
		cfg.PartSize = 64 << 20
	}
	cfg.PartSize = max(cfg.PartSize, 5<<20) // S3's minimum part size
	if cfg.PartConcurrency <= 0 {
		cfg.PartConcurrency = 4
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 3
	}
	opts := []func(*config.LoadOptions) error{
		config.WithRetryMaxAttempts(cfg.MaxAttempts),
		config.WithHTTPClient(awshttp.NewBuildableClient().WithTimeout(5 * time.Minute)),
	}
	if cfg.Region != "" {
		opts = append(opts, config.WithRegion(cfg.Region))
	}
	if cfg.AccessKey != "" {
		opts = append(opts, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(cfg.AccessKey, cfg.SecretKey, "")))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("objstore: s3 config: %w", err)
	}
	if awsCfg.Region == "" {
		awsCfg.Region = "us-east-1"
	}
	client := s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
		o.UsePathStyle = cfg.PathStyle
		// S3-compatible stores differ in their support of the newer
		// default checksums; objects carry their own CRCs anyway.
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	})
	return &S3{cfg: cfg, client: client}, nil
}

// Bucket is the store's bucket.
func (s *S3) Bucket() string { return s.cfg.Bucket }

// Client is the underlying SDK client (for bucket administration).
func (s *S3) Client() *s3.Client { return s.client }

func (s *S3) key(key string) string {
	if s.cfg.Prefix == "" {
		return key
	}
	return s.cfg.Prefix + "/" + key
}

// convert maps SDK errors to the package's sentinels.
func (s *S3) convert(op, key string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var nsb *types.NoSuchBucket
	var apiCode smithy.APIError
	if errors.As(err, &nsb) || errors.As(err, &apiCode) && apiCode.ErrorCode() == "NoSuchBucket" {
		// A configuration problem, not a missing object: never DATA_LOSS.
		return fmt.Errorf("%w: s3 %s %s: bucket %q does not exist: %v", ErrUnavailable, op, key, s.cfg.Bucket, err)
	}
	var nsk *types.NoSuchKey
	var nf *types.NotFound
	if errors.As(err, &nsk) || errors.As(err, &nf) {
		return fmt.Errorf("%w: %s (s3://%s/%s)", ErrNotExist, key, s.cfg.Bucket, s.key(key))
	}
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode() {
		case "NoSuchKey", "NotFound":
			return fmt.Errorf("%w: %s (s3://%s/%s)", ErrNotExist, key, s.cfg.Bucket, s.key(key))
		case "SlowDown", "RequestLimitExceeded", "Throttling", "ThrottlingException", "TooManyRequests":
			return fmt.Errorf("%w: s3 %s %s: %v", ErrSlowDown, op, key, err)
		case "InvalidRange":
			return fmt.Errorf("%w: s3 %s %s: %v", ErrInvalidRange, op, key, err)
		}
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		switch code := re.HTTPStatusCode(); {
		case code == 0: // no response: the request never got an answer
			return fmt.Errorf("%w: s3 %s %s: %v", ErrUnavailable, op, key, err)
		case code == http.StatusNotFound:
			return fmt.Errorf("%w: %s (s3://%s/%s)", ErrNotExist, key, s.cfg.Bucket, s.key(key))
		case code == http.StatusServiceUnavailable || code == http.StatusTooManyRequests:
			return fmt.Errorf("%w: s3 %s %s: %v", ErrSlowDown, op, key, err)
		case code >= 500:
			return fmt.Errorf("%w: s3 %s %s: %v", ErrUnavailable, op, key, err)
		default:
			return fmt.Errorf("objstore: s3 %s %s: %w", op, key, err)
		}
	}
	// No HTTP response: the service could not be reached.
	return fmt.Errorf("%w: s3 %s %s: %v", ErrUnavailable, op, key, err)
}

func (s *S3) Put(ctx context.Context, key string, data []byte) error {
	if err := ValidateKey(key); err != nil {
		return err
	}
	if len(data) > s.cfg.PartSize {
		return s.putMultipart(ctx, key, data)
	}
	_, err := s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:        aws.String(s.cfg.Bucket),
		Key:           aws.String(s.key(key)),
		Body:          bytes.NewReader(data),
		ContentLength: aws.Int64(int64(len(data))),
	})
	return s.convert("put", key, err)
}

// putMultipart uploads data in parts; the object appears whole when the
// upload completes (atomic), and a failed upload is aborted.
func (s *S3) putMultipart(ctx context.Context, key string, data []byte) error {
	create, err := s.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket: aws.String(s.cfg.Bucket), Key: aws.String(s.key(key)),
	})
	if err != nil {
		return s.convert("put", key, err)
	}
	n := (len(data) + s.cfg.PartSize - 1) / s.cfg.PartSize
	parts := make([]types.CompletedPart, n)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(s.cfg.PartConcurrency)
	for i := range n {
		part := data[i*s.cfg.PartSize : min((i+1)*s.cfg.PartSize, len(data))]
		g.Go(func() error {
			out, err := s.client.UploadPart(gctx, &s3.UploadPartInput{
				Bucket:        aws.String(s.cfg.Bucket),
				Key:           aws.String(s.key(key)),
				UploadId:      create.UploadId,
				PartNumber:    aws.Int32(int32(i + 1)),
				Body:          bytes.NewReader(part),
				ContentLength: aws.Int64(int64(len(part))),
			})
			if err != nil {
				return err
			}
			parts[i] = types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(int32(i + 1))}
			return nil
		})
	}
	err = g.Wait()
	if err == nil {
		_, err = s.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
			Bucket:          aws.String(s.cfg.Bucket),
			Key:             aws.String(s.key(key)),
			UploadId:        create.UploadId,
			MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
		})
	}
	if err != nil {
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		_, _ = s.client.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{
			Bucket: aws.String(s.cfg.Bucket), Key: aws.String(s.key(key)), UploadId: create.UploadId,
		})
		cancel()
		return s.convert("put", key, err)
	}
	return nil
}

func (s *S3) get(ctx context.Context, key, rng string, size int64) ([]byte, error) {
	in := &s3.GetObjectInput{Bucket: aws.String(s.cfg.Bucket), Key: aws.String(s.key(key))}
	if rng != "" {
		in.Range = aws.String(rng)
	}
	out, err := s.client.GetObject(ctx, in)
	if err != nil {
		return nil, s.convert("get", key, err)
	}
	defer out.Body.Close()
	if size < 0 && out.ContentLength != nil {
		size = *out.ContentLength
	}
	buf := bytes.NewBuffer(make([]byte, 0, max(size, 0)))
	if _, err := io.Copy(buf, out.Body); err != nil {
		return nil, s.convert("get", key, err)
	}
	return buf.Bytes(), nil
}

func (s *S3) Get(ctx context.Context, key string) ([]byte, error) {
	if err := ValidateKey(key); err != nil {
		return nil, err
	}
	return s.get(ctx, key, "", -1)
}

func (s *S3) GetRange(ctx context.Context, key string, off, length int64) ([]byte, error) {
	if err := ValidateKey(key); err != nil {
		return nil, err
	}
	if length <= 0 || off < 0 {
		return nil, checkRange(key, off, length, 0)
	}
	b, err := s.get(ctx, key, fmt.Sprintf("bytes=%d-%d", off, off+length-1), length)
	if err != nil {
		return nil, err
	}
	if int64(len(b)) != length {
		// S3 serves a range that reaches past the end truncated.
		return nil, fmt.Errorf("%w: [%d, +%d) of %s: only %d bytes there", ErrInvalidRange, off, length, key, len(b))
	}
	return b, nil
}

func (s *S3) Stat(ctx context.Context, key string) (ObjectInfo, error) {
	if err := ValidateKey(key); err != nil {
		return ObjectInfo{}, err
	}
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(s.cfg.Bucket), Key: aws.String(s.key(key))})
	if err != nil {
		return ObjectInfo{}, s.convert("stat", key, err)
	}
	return ObjectInfo{Key: key, Size: aws.ToInt64(out.ContentLength), ModTime: aws.ToTime(out.LastModified)}, nil
}

func (s *S3) List(ctx context.Context, prefix string, fn func(ObjectInfo) error) error {
	if err := validatePrefix(prefix); err != nil {
		return err
	}
	full := prefix
	if s.cfg.Prefix != "" {
		full = s.cfg.Prefix + "/" + prefix
	}
	p := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{Bucket: aws.String(s.cfg.Bucket), Prefix: aws.String(full)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return s.convert("list", prefix, err)
		}
		for _, o := range page.Contents {
			key := aws.ToString(o.Key)
			if s.cfg.Prefix != "" {
				key = strings.TrimPrefix(key, s.cfg.Prefix+"/")
			}
			if err := fn(ObjectInfo{Key: key, Size: aws.ToInt64(o.Size), ModTime: aws.ToTime(o.LastModified)}); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *S3) Delete(ctx context.Context, key string) error {
	if err := ValidateKey(key); err != nil {
		return err
	}
	_, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(s.cfg.Bucket), Key: aws.String(s.key(key))})
	if err := s.convert("delete", key, err); err != nil && !errors.Is(err, ErrNotExist) {
		return err
	}
	return nil
}
