package metadata

import "fmt"

// MaxTopicNameLength is Kafka's limit on topic names.
const MaxTopicNameLength = 249

// ValidateTopicName checks a topic name by Kafka's rules: 1 to 249
// characters of [a-zA-Z0-9._-], and not "." or "..". Errors wrap
// ErrInvalidTopicName and say what is wrong.
func ValidateTopicName(name string) error { return validateName(ErrInvalidTopicName, name) }

// ValidateGroupName checks a group name by the rules of topic names.
// Errors wrap ErrInvalidGroupName.
func ValidateGroupName(name string) error { return validateName(ErrInvalidGroupName, name) }

// validateName checks name by Kafka's topic name rules; errors wrap
// invalid.
func validateName(invalid error, name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty", invalid)
	case len(name) > MaxTopicNameLength:
		return fmt.Errorf("%w: %d characters, the limit is %d", invalid, len(name), MaxTopicNameLength)
	case name == "." || name == "..":
		return fmt.Errorf("%w: %q is reserved", invalid, name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != '.' && c != '_' && c != '-' {
			return fmt.Errorf("%w: %q has the character %q at %d; allowed are letters, digits, '.', '_' and '-'", invalid, name, c, i)
		}
	}
	return nil
}
