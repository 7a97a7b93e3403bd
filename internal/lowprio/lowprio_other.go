//go:build !linux

package lowprio

func lower() {}
