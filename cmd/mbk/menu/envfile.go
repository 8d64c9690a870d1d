package menu

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"

	"github.com/joho/godotenv"
)

// envAssign matches a KEY=value (or export KEY=value, or godotenv's
// KEY: value) line and captures what comes before the value.
var envAssign = regexp.MustCompile(`^(\s*(?:export\s+)?)([A-Za-z_][A-Za-z0-9_.]*)\s*[=:]`)

// setEnvKeys rewrites the assignments of the keys in vals and appends the
// keys the file lacks, in order; every other line (comments, other keys,
// blank lines) stays as it was.
func setEnvKeys(src []byte, vals map[string]string, order []string) ([]byte, error) {
	quoted := map[string]string{}
	for k, v := range vals {
		q, err := quoteEnv(v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
		quoted[k] = q
	}
	var out []string
	seen := map[string]bool{}
	text := strings.TrimSuffix(string(src), "\n")
	if text != "" {
		for _, line := range strings.Split(text, "\n") {
			if m := envAssign.FindStringSubmatch(line); m != nil {
				if q, ok := quoted[m[2]]; ok {
					line = m[1] + m[2] + "=" + q
					seen[m[2]] = true
				}
			}
			out = append(out, line)
		}
	}
	for _, k := range order {
		if _, ok := quoted[k]; ok && !seen[k] {
			out = append(out, k+"="+quoted[k])
		}
	}
	return []byte(strings.Join(out, "\n") + "\n"), nil
}

// quoteEnv writes a value so godotenv (what env_file is read with) reads it
// back unchanged. Its quoting has corners (single quotes are literal but a
// value cannot end in a backslash; double quotes expand escapes and $VARS),
// so each way is tried and the first that reads back is taken.
func quoteEnv(v string) (string, error) {
	if strings.ContainsAny(v, "\r\n\x00") {
		return "", errors.New("a value is one line, without NUL")
	}
	escaped := strings.NewReplacer(`\`, `\\`, `"`, `\"`, `$`, `\$`).Replace(v)
	for _, c := range []string{"'" + v + "'", `"` + escaped + `"`, v} {
		if m, err := godotenv.Unmarshal("K=" + c); err == nil && m["K"] == v {
			return c, nil
		}
	}
	return "", errors.New("this value cannot be written so that the env file reads it back unchanged: set it by hand")
}

// writeEnvFile sets keys in an env file, keeping everything else, and
// replaces the file atomically with mode 0600 (it holds the SMTP password).
// It checks, before replacing anything, that the new file reads back as
// the old one with exactly these keys changed.
func writeEnvFile(path string, vals map[string]string, order []string) error {
	if real, err := filepath.EvalSymlinks(path); err == nil {
		path = real // replace the file a link points to, not the link
	}
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	before, err := godotenv.UnmarshalBytes(old)
	if err != nil {
		return fmt.Errorf("%s cannot be read as an env file (%v): fix it by hand first", path, err)
	}
	updated, err := setEnvKeys(old, vals, order)
	if err != nil {
		return err
	}
	after, err := godotenv.UnmarshalBytes(updated)
	if err != nil {
		return fmt.Errorf("the new %s would not read back: %v", path, err)
	}
	for k, v := range vals {
		before[k] = v
	}
	for k := range before {
		if after[k] != before[k] {
			return fmt.Errorf("the new %s would not read %s back unchanged: nothing was written", path, k)
		}
	}
	if len(after) != len(before) {
		return fmt.Errorf("the new %s would read differently: nothing was written", path)
	}
	return replaceFile(path, updated)
}

func replaceFile(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(0o600); err != nil {
		return err
	}
	// Root editing a file another user owns must not take it over.
	if st, err := os.Stat(path); err == nil {
		if sys, ok := st.Sys().(*syscall.Stat_t); ok && os.Geteuid() == 0 {
			if err := tmp.Chown(int(sys.Uid), int(sys.Gid)); err != nil {
				return err
			}
		}
	}
	if _, err := tmp.Write(data); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	// The rename is durable only once the directory is synced.
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// readEnvFile returns the file's values; a missing file is empty.
func readEnvFile(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]string{}, nil
	}
	if err != nil {
		return nil, err
	}
	return godotenv.UnmarshalBytes(b)
}
