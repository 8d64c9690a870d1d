// Package redact keeps secrets out of everything mbk writes: log lines (its
// own and its plugins'), error messages and reports. It is the second line of
// defence: secrets are already kept out of arguments and messages by design.
package redact

import (
	"bytes"
	"encoding/json"
	"io"
	"sort"
	"strings"
	"sync"
)

// Mask replaces a secret.
const Mask = "********"

// minLen: shorter values would mask ordinary words; such a secret is too weak
// to protect by masking anyway.
const minLen = 4

// Redactor holds the secrets of the current process.
type Redactor struct {
	mu      sync.RWMutex
	secrets []string // longest first, so a secret containing another is masked whole
}

// Add registers secrets.
func (r *Redactor) Add(secrets ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var all []string
	for _, s := range secrets {
		all = append(all, s)
		// JSON logs carry a secret holding quotes or backslashes escaped.
		if b, err := json.Marshal(s); err == nil {
			if esc := string(b[1 : len(b)-1]); esc != s {
				all = append(all, esc)
			}
		}
	}
	for _, s := range all {
		if len(s) < minLen {
			continue
		}
		dup := false
		for _, have := range r.secrets {
			if have == s {
				dup = true
				break
			}
		}
		if !dup {
			r.secrets = append(r.secrets, s)
		}
	}
	sort.Slice(r.secrets, func(i, j int) bool { return len(r.secrets[i]) > len(r.secrets[j]) })
}

// String masks every secret in s.
func (r *Redactor) String(s string) string {
	if r == nil {
		return s
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, sec := range r.secrets {
		s = strings.ReplaceAll(s, sec, Mask)
	}
	return s
}

// Writer masks secrets in what passes to w. hclog writes one whole line per
// Write call, so a secret is never split across calls by the logger.
func (r *Redactor) Writer(w io.Writer) io.Writer {
	if r == nil {
		return w
	}
	return &writer{r: r, w: w}
}

type writer struct {
	r *Redactor
	w io.Writer
}

func (w *writer) Write(p []byte) (int, error) {
	w.r.mu.RLock()
	out := p
	for _, sec := range w.r.secrets {
		if bytes.Contains(out, []byte(sec)) {
			out = bytes.ReplaceAll(out, []byte(sec), []byte(Mask))
		}
	}
	w.r.mu.RUnlock()
	if _, err := w.w.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}
