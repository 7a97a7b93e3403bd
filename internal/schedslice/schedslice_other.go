//go:build !linux

package schedslice

import (
	"errors"
	"time"
)

func set(time.Duration) (int, error) {
	return 0, errors.New("scheduler slices are a Linux feature")
}
