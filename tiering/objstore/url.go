package objstore

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
)

// Open returns the store a URL names:
//
//	file:///absolute/path
//	s3://bucket[/prefix][?endpoint=http://127.0.0.1:9000&region=us-east-1&path-style=true]
//	mem://                       (in memory, for tests)
//
// S3 credentials come from the standard AWS chain (AWS_ACCESS_KEY_ID and
// AWS_SECRET_ACCESS_KEY, shared files, web identity, IMDS).
func Open(ctx context.Context, raw string) (Store, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("objstore: URL %q: %v", raw, err)
	}
	switch u.Scheme {
	case "file":
		if u.Host != "" || u.Path == "" || u.RawQuery != "" {
			return nil, fmt.Errorf("objstore: URL %q: want file:///absolute/path", raw)
		}
		return NewFile(u.Path)
	case "mem":
		return NewMem(), nil
	case "s3":
		if u.Host == "" {
			return nil, fmt.Errorf("objstore: URL %q: want s3://bucket/prefix", raw)
		}
		cfg := S3Config{Bucket: u.Host, Prefix: u.Path}
		q := u.Query()
		for k := range q {
			switch k {
			case "endpoint", "region", "path-style":
			default:
				return nil, fmt.Errorf("objstore: URL %q: unknown parameter %q (want endpoint, region, path-style)", raw, k)
			}
		}
		cfg.Endpoint, cfg.Region = q.Get("endpoint"), q.Get("region")
		if v := q.Get("path-style"); v != "" {
			if cfg.PathStyle, err = strconv.ParseBool(v); err != nil {
				return nil, fmt.Errorf("objstore: URL %q: path-style=%q is not a boolean", raw, v)
			}
		}
		if cfg.Endpoint != "" {
			e, err := url.Parse(cfg.Endpoint)
			if err != nil || (e.Scheme != "http" && e.Scheme != "https") || e.Host == "" {
				return nil, fmt.Errorf("objstore: URL %q: endpoint %q: want http(s)://host:port", raw, cfg.Endpoint)
			}
		}
		return NewS3(ctx, cfg)
	}
	return nil, fmt.Errorf("objstore: URL %q: unsupported scheme %q (want file, s3 or mem)", raw, u.Scheme)
}
