package packaging

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mbk-backup/mbk/core/testing/testenv"
)

// TestImage: make image builds the FROM-scratch image without a registry,
// and the image, given the Docker socket as the README's compose snippet
// gives it, backs up a real site into a bound directory: one complete set.
func TestImage(t *testing.T) {
	image := testenv.UniqueName(t, "mbktest-image") + ":test"
	t.Cleanup(func() { run(t, nil, "docker", "rmi", "-f", image) })
	run(t, nil, "make", "image", "BIN="+filepath.Join(t.TempDir(), "bin"), "IMAGE="+image)

	// Nothing but mbk, its plugins, certificates and zone data: no shell.
	if out, err := dockerRun(t, "--entrypoint", "/bin/sh", image, "-c", "true"); err == nil {
		t.Errorf("the image has a shell:\n%s", out)
	}

	s := newSite(t)
	dir := t.TempDir()
	pipelines := filepath.Join(dir, "pipelines")
	root := filepath.Join(dir, "backups")
	if err := os.MkdirAll(pipelines, 0o755); err != nil {
		t.Fatal(err)
	}
	s.pipeline(t, pipelines, "/srv/backups")
	envFile := filepath.Join(dir, "env")
	if err := os.WriteFile(envFile, []byte("MYSQL_PASSWORD="+s.password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := dockerRun(t,
		"-v", "/var/run/docker.sock:/var/run/docker.sock",
		"-v", root+":/srv/backups",
		"-v", pipelines+":/etc/mbk/pipelines:ro",
		"--env-file", envFile,
		image, "run", "/etc/mbk/pipelines/site.hcl")
	if err != nil {
		t.Fatalf("mbk run in the image: %v\n%s", err, out)
	}
	if strings.Contains(out, s.password) {
		t.Errorf("the password reached the output")
	}
	checkSet(t, root)
}

// dockerRun runs docker run ARGS with a container removed when it ends (or
// at cleanup) and returns its output.
func dockerRun(t *testing.T, args ...string) (string, error) {
	t.Helper()
	name := testenv.UniqueName(t, "mbktest-imagerun")
	t.Cleanup(func() { runQuiet("docker", "rm", "-f", name) })
	return runErr(nil, "docker", append([]string{"run", "--rm", "--name", name}, args...)...)
}
