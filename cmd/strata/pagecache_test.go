package main

import "testing"

// --page-cache-window maps onto broker.Config.PageCacheWindow: a size as
// given, all as never (-1), 0 as a window of one byte (0 in the Config
// would mean its default).
func TestParsePageCacheWindow(t *testing.T) {
	for v, want := range map[string]int64{"256MiB": 256 << 20, "all": -1, " all ": -1, "0": 1, "4096": 4096, "1GB": 1e9} {
		if got, err := parsePageCacheWindow(v); err != nil || got != want {
			t.Errorf("parsePageCacheWindow(%q) = %d, %v; want %d", v, got, err, want)
		}
	}
	// Too large for int64: refused, not wrapped into a negative or tiny window.
	if got, err := parsePageCacheWindow("100000000TiB"); err == nil {
		t.Errorf("parsePageCacheWindow(100000000TiB) = %d, want an error", got)
	}
}
