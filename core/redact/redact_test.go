package redact_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/mbk-backup/mbk/core/redact"
)

func TestString(t *testing.T) {
	tests := []struct {
		name    string
		secrets []string
		in      string
		want    string
	}{
		{"masked", []string{"hunter22"}, "login with hunter22 failed", "login with ******** failed"},
		{"every occurrence", []string{"hunter22"}, "hunter22/hunter22", "********/********"},
		{"several secrets", []string{"alpha-pw", "beta-token"}, "a=alpha-pw b=beta-token", "a=******** b=********"},
		{"longest first", []string{"pass", "password123"}, "password123 and pass", "******** and ********"},
		{"longest first, whatever the order added", []string{"password123", "pass"}, "password123", "********"},
		{"short ones not masked", []string{"abc", "x"}, "abc x abcd", "abc x abcd"},
		{"four chars masked", []string{"abcd"}, "abcd", "********"},
		{"empty secret ignored", []string{""}, "text", "text"},
		{"no secrets", nil, "text", "text"},
		{"JSON-escaped form", []string{`pa"ss\word`}, `{"msg":"pa\"ss\\word"}`, `{"msg":"********"}`},
		{"raw form too", []string{`pa"ss\word`}, `raw pa"ss\word`, `raw ********`},
		{"unicode", []string{"contraseña"}, "pw=contraseña.", "pw=********."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &redact.Redactor{}
			for _, s := range tt.secrets {
				r.Add(s) // one at a time: ordering must not depend on Add batches
			}
			if got := r.String(tt.in); got != tt.want {
				t.Errorf("String(%q) = %q, want %q", tt.in, got, tt.want)
			}
			var buf bytes.Buffer
			n, err := r.Writer(&buf).Write([]byte(tt.in))
			if err != nil || n != len(tt.in) {
				t.Errorf("Write = %d, %v; want %d, nil", n, err, len(tt.in))
			}
			if buf.String() != tt.want {
				t.Errorf("Writer wrote %q, want %q", buf.String(), tt.want)
			}
		})
	}
}

func TestNilRedactor(t *testing.T) {
	var r *redact.Redactor
	if got := r.String("hunter22"); got != "hunter22" {
		t.Errorf("nil String = %q", got)
	}
	// A Writer from a nil Redactor passes text through, like String.
	var buf bytes.Buffer
	func() {
		defer func() {
			if p := recover(); p != nil {
				t.Errorf("nil Redactor's Writer panicked: %v", p)
			}
		}()
		r.Writer(&buf).Write([]byte("line\n"))
	}()
	if buf.String() != "line\n" {
		t.Errorf("nil Writer wrote %q", buf.String())
	}
}

// The way mbk really logs: an hclog JSON logger writing through the
// redactor. The secret must not survive in any form, and the output must
// still be valid JSON.
func TestHclogJSON(t *testing.T) {
	const secret = `s3"cr\et-Pa55`
	r := &redact.Redactor{}
	r.Add(secret)
	var buf bytes.Buffer
	log := hclog.New(&hclog.LoggerOptions{Output: r.Writer(&buf), JSONFormat: true, Level: hclog.Debug})

	log.Info("connecting", "password", secret, "user", "moodle")
	log.Error("dump failed", "error", fmt.Errorf("mariadb-dump: Access denied using password %s", secret))
	log.With("dsn", "moodle:"+secret+"@db").Debug("dsn built")
	log.Warn("nested", "args", map[string]string{"pw": secret})

	out := buf.String()
	unescaped := strings.NewReplacer(`\"`, `"`, `\\`, `\`).Replace(out)
	for _, leak := range []string{secret, `s3\"cr\\et-Pa55`, "cr\\et", `s3"cr`} {
		if strings.Contains(out, leak) || strings.Contains(unescaped, leak) {
			t.Errorf("secret leaked as %q:\n%s", leak, out)
		}
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 {
		t.Fatalf("got %d log lines:\n%s", len(lines), out)
	}
	for _, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Errorf("line is no longer JSON: %v\n%s", err, l)
			continue
		}
		if !strings.Contains(l, redact.Mask) {
			t.Errorf("line has no mask: %s", l)
		}
	}
	if !strings.Contains(lines[0], `"user":"moodle"`) {
		t.Errorf("ordinary values must pass: %s", lines[0])
	}
}

func TestErrorText(t *testing.T) {
	r := &redact.Redactor{}
	r.Add("tok-12345")
	err := fmt.Errorf("send: %w", errors.New("401 for token tok-12345"))
	if got := r.String(err.Error()); got != "send: 401 for token ********" {
		t.Errorf("got %q", got)
	}
}

// Secrets are added while plugins log through the writer (a stage decoded
// late); run with -race.
func TestConcurrentAddAndWrite(t *testing.T) {
	r := &redact.Redactor{}
	var buf syncBuffer
	w := r.Writer(&buf)
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for j := 0; j < 200; j++ {
				r.Add(fmt.Sprintf("secret-%d-%d", i, j))
			}
		}()
		go func() {
			defer wg.Done()
			for j := 0; j < 200; j++ {
				w.Write([]byte("line secret-0-0\n"))
				r.String("secret-1-1")
			}
		}()
	}
	wg.Wait()
	if got := r.String("secret-3-199 secret-0-0"); got != "******** ********" {
		t.Errorf("after concurrent adds: %q", got)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
