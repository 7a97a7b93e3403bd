package metadata

import "fmt"

// MaxTopicNameLength is Kafka's limit on topic names.
const MaxTopicNameLength = 249

// ValidateTopicName checks a topic name by Kafka's rules: 1 to 249
// characters of [a-zA-Z0-9._-], and not "." or "..". Errors wrap
// ErrInvalidTopicName and say what is wrong.
func ValidateTopicName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty", ErrInvalidTopicName)
	case len(name) > MaxTopicNameLength:
		return fmt.Errorf("%w: %d characters, the limit is %d", ErrInvalidTopicName, len(name), MaxTopicNameLength)
	case name == "." || name == "..":
		return fmt.Errorf("%w: %q is reserved", ErrInvalidTopicName, name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != '.' && c != '_' && c != '-' {
			return fmt.Errorf("%w: %q has the character %q at %d; allowed are letters, digits, '.', '_' and '-'", ErrInvalidTopicName, name, c, i)
		}
	}
	return nil
}
