package metadata

import (
	"errors"
	"strings"
	"testing"
)

func TestValidateTopicName(t *testing.T) {
	for name, ok := range map[string]bool{
		"orders": true, "a.b_c-D9": true, strings.Repeat("x", 249): true,
		"": false, ".": false, "..": false, strings.Repeat("x", 250): false,
		"with space": false, "slash/es": false, "ünicode": false, "star*": false,
	} {
		err := ValidateTopicName(name)
		if ok != (err == nil) || (err != nil && !errors.Is(err, ErrInvalidTopicName)) {
			t.Errorf("ValidateTopicName(%q) = %v, want ok=%v", name, err, ok)
		}
	}
}

func FuzzValidateTopicName(f *testing.F) {
	for _, s := range []string{"orders", "", ".", "..", "a/b", "x y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if ValidateTopicName(name) != nil {
			return
		}
		if name == "" || name == "." || name == ".." || len(name) > MaxTopicNameLength {
			t.Fatalf("accepted %q", name)
		}
		for _, c := range name {
			if !strings.ContainsRune("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-", c) {
				t.Fatalf("accepted %q with %q", name, c)
			}
		}
	})
}
