package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"gopkg.in/yaml.v3"
)

// applyConfig fills every flag of cmd the user did not set on the command
// line, in order of precedence: the STRATA_<FLAG> environment variable (the
// flag name upper-cased, dashes as underscores), then the key of the same
// name in the YAML file given by --config, then the flag's default.
func applyConfig(cmd *cobra.Command) error {
	file := map[string]any{}
	path, _ := cmd.Flags().GetString("config")
	if path == "" {
		path = os.Getenv("STRATA_CONFIG")
	}
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("read config file: %w", err)
		}
		if err := yaml.Unmarshal(b, &file); err != nil {
			return fmt.Errorf("parse config file %s: %w", path, err)
		}
		for k := range file {
			if cmd.Flags().Lookup(k) == nil {
				return fmt.Errorf("config file %s: unknown key %q for %q", path, k, cmd.CommandPath())
			}
		}
	}
	var err error
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if err != nil || f.Changed || f.Name == "config" {
			return
		}
		env := "STRATA_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(env); ok {
			if e := setFlag(f, v); e != nil {
				err = fmt.Errorf("%s: %w", env, e)
			}
			return
		}
		if v, ok := file[f.Name]; ok {
			if e := setFlag(f, yamlString(v)); e != nil {
				err = fmt.Errorf("config file %s: %s: %w", path, f.Name, e)
			}
		}
	})
	return err
}

// setFlag sets a flag from text; list flags take comma-separated values.
func setFlag(f *pflag.Flag, v string) error {
	if sv, ok := f.Value.(pflag.SliceValue); ok {
		return sv.Replace(splitList(v))
	}
	return f.Value.Set(v)
}

func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// yamlString renders a YAML scalar or list as flag text.
func yamlString(v any) string {
	switch t := v.(type) {
	case []any:
		parts := make([]string, len(t))
		for i, e := range t {
			parts[i] = fmt.Sprint(e)
		}
		return strings.Join(parts, ",")
	case map[string]any:
		parts := make([]string, 0, len(t))
		for k, e := range t {
			parts = append(parts, fmt.Sprintf("%s=%v", k, e))
		}
		return strings.Join(parts, ",")
	default:
		return fmt.Sprint(v)
	}
}
