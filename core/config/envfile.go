package config

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"

	"github.com/hashicorp/hcl/v2"
)

// envFile is what a file's env_file held and how it may be read: a file of
// passwords readable by others gives them away however carefully mbk keeps
// them out of arguments and logs.
type envFile struct {
	path    string
	subject hcl.Range // the env_file attribute's value
	values  map[string]string
	mode    os.FileMode
	uid     uint32
	gid     uint32

	mu sync.Mutex
	// used are the variables env() took from the file (not from the
	// process environment, which wins).
	used map[string]bool
}

// use records that env() took name from the file.
func (e *envFile) use(name string) {
	if e == nil {
		return
	}
	e.mu.Lock()
	e.used[name] = true
	e.mu.Unlock()
}

// newEnvFile records the mode and owner of an env_file that was read.
func newEnvFile(path string, subject hcl.Range, values map[string]string) *envFile {
	e := &envFile{path: path, subject: subject, values: values, used: map[string]bool{}}
	if st, err := os.Stat(path); err == nil {
		e.mode = st.Mode().Perm()
		if sys, ok := st.Sys().(*syscall.Stat_t); ok {
			e.uid, e.gid = sys.Uid, sys.Gid
		}
	}
	return e
}

// CheckEnvFile holds the file's env_file to what its values are for: when
// a variable env() took from it reaches a sensitive setting (its value is
// one of secrets, or part of one), the file must be the user's own and
// readable by no one else. Owned by another user, or readable (or
// writable) by every user, it is refused; readable by its group, a warning
// says to run chmod 600. Each names the variables at stake, never their
// values. Each pipeline of the file asks (engine.Prepare), and gets the
// same diagnostic; WriteDiagnostics prints it once.
func (f *File) CheckEnvFile(secrets []string) hcl.Diagnostics {
	if f == nil || f.env == nil {
		return nil
	}
	e := f.env
	e.mu.Lock()
	defer e.mu.Unlock()
	var names []string
	for name := range e.used {
		v := e.values[name]
		if v == "" {
			continue
		}
		for _, s := range secrets {
			if s == v || len(v) >= 6 && strings.Contains(s, v) {
				names = append(names, name)
				break
			}
		}
	}
	if len(names) == 0 {
		return nil
	}
	slices.Sort(names)
	holds := fmt.Sprintf("%s, which %s sensitive settings", strings.Join(names, ", "), map[bool]string{true: "reaches", false: "reach"}[len(names) == 1])
	euid := os.Geteuid()
	var d *hcl.Diagnostic
	switch {
	case int(e.uid) != euid:
		d = &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "env_file belongs to another user",
			Detail: fmt.Sprintf("%s is owned by uid %d, not by the user mbk runs as (uid %d), and holds %s: its owner can read and change them. Run: chown %d %s && chmod 600 %s",
				e.path, e.uid, euid, holds, euid, e.path, e.path)}
	case e.mode&0o006 != 0:
		d = &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "env_file is open to every user",
			Detail: fmt.Sprintf("%s can be read or written by every user (mode %04o) and holds %s. Run: chmod 600 %s",
				e.path, e.mode, holds, e.path)}
	case e.mode&0o060 != 0:
		d = &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: "env_file is readable by its group",
			Detail: fmt.Sprintf("%s can be read by group %d (mode %04o) and holds %s: everyone in that group can read them. Run: chmod 600 %s",
				e.path, e.gid, e.mode, holds, e.path)}
	default:
		return nil
	}
	d.Subject = e.subject.Ptr()
	return hcl.Diagnostics{d}
}
