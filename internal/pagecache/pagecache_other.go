//go:build !linux

package pagecache

func resident0(string) (int, int, error) { return 0, 0, ErrUnsupported }

func droppable0(string) error { return ErrUnsupported }
