package repo_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/mbk-backup/mbk/core/repo"
)

// The test binary doubles as a helper process: with MBK_REPO_HELPER set it
// runs one repo operation instead of the tests, so that locks and deletes are
// exercised across real processes.
const helperEnv = "MBK_REPO_HELPER"

func TestMain(m *testing.M) {
	mode := os.Getenv(helperEnv)
	if mode == "" {
		os.Exit(m.Run())
	}
	root := os.Getenv("MBK_REPO_ROOT")
	switch mode {
	case "hold-lock":
		l, err := repo.Acquire(root)
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println("locked")
		// Hold until the parent closes stdin or kills us.
		io.Copy(io.Discard, os.Stdin)
		l.Release()
	case "try-lock":
		_, err := repo.Acquire(root)
		var le *repo.LockedError
		switch {
		case err == nil:
			fmt.Println("acquired")
		case errors.As(err, &le) && errors.Is(err, repo.ErrLocked):
			fmt.Printf("locked pid=%d: %s\n", le.PID, err)
		default:
			fmt.Println("error:", err)
		}
	case "delete":
		fmt.Println("delete:", repo.Delete(root, os.Getenv("MBK_REPO_SET")))
	default:
		fmt.Println("unknown helper mode", mode)
		os.Exit(2)
	}
	os.Exit(0)
}

// helper prepares the test binary to run as a helper process.
func helper(mode, root string, env ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), helperEnv+"="+mode, "MBK_REPO_ROOT="+root)
	cmd.Env = append(cmd.Env, env...)
	cmd.Stderr = os.Stderr
	return cmd
}

func runHelper(t *testing.T, mode, root string) string {
	t.Helper()
	out, err := helper(mode, root).Output()
	if err != nil {
		t.Fatalf("helper %s: %v (%s)", mode, err, out)
	}
	return strings.TrimSpace(string(out))
}

// runDeleteUnprivileged runs repo.Delete in a helper process that permission
// checks apply to: as root, the helper runs as nobody over a tree nobody owns.
func runDeleteUnprivileged(t *testing.T, root, name string) string {
	t.Helper()
	cmd := helper("delete", root, "MBK_REPO_SET="+name)
	if os.Geteuid() == 0 {
		const nobody = 65534
		// nobody must reach root through its parents (t.TempDir makes them 0700).
		for d := filepath.Dir(root); d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
			if err := os.Chmod(d, 0o711); err != nil {
				t.Fatal(err)
			}
		}
		err := filepath.Walk(root, func(p string, _ os.FileInfo, err error) error {
			if err != nil {
				return err
			}
			return os.Lchown(p, nobody, nobody)
		})
		if err != nil {
			t.Fatal(err)
		}
		// go test's build directory is private: nobody runs a copy.
		bin, err := os.ReadFile(os.Args[0])
		if err != nil {
			t.Fatal(err)
		}
		exe := filepath.Join(filepath.Dir(root), "repo.test")
		if err := os.WriteFile(exe, bin, 0o755); err != nil {
			t.Fatal(err)
		}
		cmd.Path, cmd.Args[0] = exe, exe
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	}
	t.Cleanup(func() {
		// Let t.TempDir's cleanup remove what the test made read-only.
		filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
			if err == nil && info.IsDir() {
				os.Chmod(p, 0o700)
			}
			return nil
		})
	})
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("delete helper: %v (%s)", err, out)
	}
	return strings.TrimSpace(string(out))
}

func TestLockAcrossProcesses(t *testing.T) {
	t.Run("a child cannot take the lock the parent holds", func(t *testing.T) {
		root := t.TempDir()
		l, err := repo.Acquire(root)
		if err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf("locked pid=%d: another mbk run (pid %d) holds the lock on %s", os.Getpid(), os.Getpid(), root)
		if got := runHelper(t, "try-lock", root); got != want {
			t.Errorf("child said %q\nwant %q", got, want)
		}
		if p := mode(t, filepath.Join(root, repo.LockFile)); p != 0o600 {
			t.Errorf("lock file mode %o, want 600", p)
		}
		if err := l.Release(); err != nil {
			t.Fatal(err)
		}
		if got := runHelper(t, "try-lock", root); got != "acquired" {
			t.Errorf("after Release the child said %q", got)
		}
	})

	t.Run("a killed holder's lock is taken over", func(t *testing.T) {
		root := t.TempDir()
		holder := helper("hold-lock", root)
		stdin, err := holder.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		defer stdin.Close()
		stdout, err := holder.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := holder.Start(); err != nil {
			t.Fatal(err)
		}
		killed := false
		defer func() {
			if !killed {
				holder.Process.Kill()
				holder.Wait()
			}
		}()
		line, err := bufio.NewReader(stdout).ReadString('\n')
		if err != nil || line != "locked\n" {
			t.Fatalf("holder said %q, %v", line, err)
		}

		_, err = repo.Acquire(root)
		var le *repo.LockedError
		if !errors.As(err, &le) || !errors.Is(err, repo.ErrLocked) {
			t.Fatalf("Acquire while a child holds the lock = %v", err)
		}
		if le.PID != holder.Process.Pid || le.Root != root {
			t.Errorf("LockedError = %+v, want pid %d root %s", le, holder.Process.Pid, root)
		}
		if want := fmt.Sprintf("another mbk run (pid %d) holds the lock on %s", holder.Process.Pid, root); err.Error() != want {
			t.Errorf("error %q\nwant %q", err, want)
		}

		if err := holder.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		holder.Wait()
		killed = true

		l, err := repo.Acquire(root)
		if err != nil {
			t.Fatalf("Acquire after the holder was killed: %v", err)
		}
		defer l.Release()
		b, _ := os.ReadFile(filepath.Join(root, repo.LockFile))
		if strings.TrimSpace(string(b)) != fmt.Sprint(os.Getpid()) {
			t.Errorf("lock file holds %q, want our pid %d", b, os.Getpid())
		}
	})
}

func TestLockedErrorWithoutPID(t *testing.T) {
	err := &repo.LockedError{Root: "/b"}
	if err.Error() != "another mbk run holds the lock on /b" || !errors.Is(err, repo.ErrLocked) {
		t.Errorf("LockedError{} = %q", err)
	}
}
