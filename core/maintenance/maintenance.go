// Package maintenance puts a Moodle site in maintenance mode around a backup
// or a restore, with Moodle's own admin/cli/maintenance.php run as the web
// user inside the app container.
//
// It never switches off maintenance that an administrator had switched on,
// always switches off what it switched on (after a failure too), and leaves
// a marker beside the sets while the window is open, so that a run killed
// inside the window is cleaned up by the next one.
package maintenance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/mbk-backup/mbk/core/config"
	"github.com/mbk-backup/mbk/core/docker"
	"github.com/mbk-backup/mbk/core/repo"
)

// MarkerFile is left in the pipeline's root while mbk holds the site in
// maintenance mode.
const MarkerFile = ".mbk-maintenance.json"

// offTimeout bounds switching maintenance off, which runs with a fresh
// context: the run's own may have ended (timeout, Ctrl-C).
const offTimeout = 2 * time.Minute

type marker struct {
	Container string    `json:"container"`
	Since     time.Time `json:"since"`
	PID       int       `json:"pid"`
}

// Site runs maintenance.php in one app container.
type Site struct {
	cfg       *config.Maintenance
	dc        *docker.Client
	container string
	log       hclog.Logger
}

// Open finds the app container.
func Open(ctx context.Context, cfg *config.Maintenance, log hclog.Logger) (*Site, error) {
	dc, err := docker.New()
	if err != nil {
		return nil, err
	}
	info, err := dc.FindRunning(ctx, docker.Target{Container: cfg.Container, ComposeProject: cfg.ComposeProject, ComposeService: cfg.ComposeService})
	if err != nil {
		dc.Close()
		return nil, fmt.Errorf("maintenance mode: %w", err)
	}
	return &Site{cfg: cfg, dc: dc, container: strings.TrimPrefix(info.Name, "/"), log: log}, nil
}

// Close releases the Docker client.
func (s *Site) Close() { s.dc.Close() }

func (s *Site) php(ctx context.Context, args ...string) (string, error) {
	return s.script(ctx, s.cfg.Script, args...)
}

// script runs a PHP script as the web user in the app container.
func (s *Site) script(ctx context.Context, script string, args ...string) (string, error) {
	var out strings.Builder
	var errLines []string
	code, err := s.dc.Run(ctx, docker.Exec{
		Container: s.container,
		User:      s.cfg.User,
		Cmd:       append([]string{s.cfg.PHP, script}, args...),
		Stdout:    &out,
		Stderr:    func(l string) { errLines = append(errLines, l) },
	})
	if err != nil {
		return "", err
	}
	if code != 0 {
		msg := strings.TrimSpace(strings.Join(errLines, "\n") + "\n" + out.String())
		cmd := strings.Join(append([]string{s.cfg.PHP, script}, args...), " ")
		return "", fmt.Errorf("%s (as %s in container %q) exited with %d: %s", cmd, s.cfg.User, s.container, code, msg)
	}
	return out.String(), nil
}

// MoodleDir is the directory of Moodle's code in the app container: the
// one that holds admin/cli/maintenance.php.
func (s *Site) MoodleDir() string { return path.Dir(path.Dir(path.Dir(s.cfg.Script))) }

// Container is the app container's name.
func (s *Site) Container() string { return s.container }

// CLI runs one of Moodle's CLI scripts, given by its path under Moodle's
// directory ("admin/cli/purge_caches.php"), and returns what it printed.
func (s *Site) CLI(ctx context.Context, rel string, args ...string) (string, error) {
	return s.script(ctx, path.Join(s.MoodleDir(), rel), args...)
}

// Config reads one of the site's settings ($CFG->name) with admin/cli/cfg.php.
func (s *Site) Config(ctx context.Context, name string) (string, error) {
	out, err := s.CLI(ctx, "admin/cli/cfg.php", "--name="+name)
	return strings.TrimSpace(out), err
}

// SetConfig stores one of the site's settings in its config table with
// admin/cli/cfg.php (config.php, where it sets the same name, wins).
func (s *Site) SetConfig(ctx context.Context, name, value string) error {
	_, err := s.CLI(ctx, "admin/cli/cfg.php", "--name="+name, "--set="+value)
	return err
}

// On reports whether the site is in maintenance mode, from maintenance.php's
// status line ("Status: disabled", "Status: CLI maintenance mode enabled").
func (s *Site) On(ctx context.Context) (bool, error) {
	out, err := s.php(ctx)
	if err != nil {
		return false, err
	}
	l := strings.ToLower(out)
	switch {
	case strings.Contains(l, "disabled"):
		return false, nil
	case strings.Contains(l, "enabled"):
		return true, nil
	}
	return false, fmt.Errorf("cannot tell the maintenance state from %s's output: %q", s.cfg.Script, strings.TrimSpace(out))
}

// Window is an open maintenance window.
type Window struct {
	site   *Site
	root   string
	start  time.Time
	ours   bool // false: it was already on, and stays on
	closed bool
}

// Begin opens a window: it records the state, and switches maintenance on
// unless an administrator already had.
func Begin(ctx context.Context, s *Site, root string) (*Window, error) {
	on, err := s.On(ctx)
	if err != nil {
		return nil, fmt.Errorf("maintenance mode: %w", err)
	}
	w := &Window{site: s, root: root, start: time.Now()}
	if on {
		s.log.Warn("the site is already in maintenance mode: an administrator switched it on, so mbk will leave it on", "container", s.container)
		return w, nil
	}
	// The marker goes down first: if we die between the two, the next run
	// finds a marker and a site that is off, and only removes the marker.
	b, _ := json.Marshal(marker{Container: s.container, Since: w.start.UTC(), PID: os.Getpid()})
	if err := repo.WriteFileSync(filepath.Join(root, MarkerFile), b); err != nil {
		return nil, fmt.Errorf("maintenance mode: write marker: %w", err)
	}
	if _, err := s.php(ctx, "--enable"); err != nil {
		os.Remove(filepath.Join(root, MarkerFile))
		return nil, fmt.Errorf("maintenance mode: enable: %w", err)
	}
	w.ours = true
	s.log.Info("maintenance mode on", "container", s.container)
	return w, nil
}

// End closes the window: maintenance goes off again if mbk switched it on.
// It returns how long the site was held in maintenance by mbk.
func (w *Window) End() (time.Duration, error) {
	if w.closed || !w.ours {
		w.closed = true
		return 0, nil
	}
	w.closed = true
	ctx, cancel := context.WithTimeout(context.Background(), offTimeout)
	defer cancel()
	d := time.Since(w.start)
	if _, err := w.site.php(ctx, "--disable"); err != nil {
		return d, fmt.Errorf("maintenance mode: disable (the site is STILL in maintenance mode; the next run retries): %w", err)
	}
	os.Remove(filepath.Join(w.root, MarkerFile))
	w.site.log.Info("maintenance mode off", "container", w.site.container, "held", d.Round(time.Millisecond))
	return d, nil
}

// Ours reports whether mbk switched maintenance on in this window.
func (w *Window) Ours() bool { return w.ours }

// Recover finishes the window of a run that was killed inside it: when the
// marker is there, maintenance is switched off. Call it holding the root's
// lock. It says what it did, "" when there was nothing to do.
func Recover(ctx context.Context, s *Site, root string) (string, error) {
	path := filepath.Join(root, MarkerFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	var m marker
	_ = json.Unmarshal(b, &m)
	on, err := s.On(ctx)
	if err != nil {
		return "", fmt.Errorf("maintenance mode left by an interrupted run: %w", err)
	}
	if on {
		if _, err := s.php(ctx, "--disable"); err != nil {
			return "", fmt.Errorf("maintenance mode left by an interrupted run: disable: %w", err)
		}
	}
	if err := os.Remove(path); err != nil {
		return "", err
	}
	if !on {
		return fmt.Sprintf("an interrupted run (pid %d) left a maintenance marker from %s; the site was already out of maintenance", m.PID, m.Since.Format(time.RFC3339)), nil
	}
	return fmt.Sprintf("switched off maintenance mode left on by an interrupted run (pid %d, since %s)", m.PID, m.Since.Format(time.RFC3339)), nil
}

// Hold opens a window for a restore. It is Begin, except that a window an
// earlier restore left open (its marker is still in the root) is taken
// over, maintenance switched on again if someone switched it off: this
// restore's End then takes the site out of maintenance.
func Hold(ctx context.Context, s *Site, root string) (*Window, error) {
	if _, err := os.Stat(filepath.Join(root, MarkerFile)); err != nil {
		return Begin(ctx, s, root)
	}
	on, err := s.On(ctx)
	if err != nil {
		return nil, fmt.Errorf("maintenance mode: %w", err)
	}
	if !on {
		if _, err := s.php(ctx, "--enable"); err != nil {
			return nil, fmt.Errorf("maintenance mode: enable: %w", err)
		}
	}
	s.log.Info("maintenance mode held over from an unfinished restore", "container", s.container)
	return &Window{site: s, root: root, start: time.Now(), ours: true}, nil
}

// Reassert switches maintenance on again while the window is open, if the
// site has left it: a restored dataroot does not hold Moodle's flag
// (climaintenance.html is never archived), so once the files are restored
// the site would serve them beside a database that is still loading.
func (w *Window) Reassert(ctx context.Context) {
	if w.closed {
		return
	}
	if on, err := w.site.On(ctx); err == nil && on {
		return
	}
	if _, err := w.site.php(ctx, "--enable"); err != nil {
		w.site.log.Error("cannot switch maintenance mode on again after the files were restored", "container", w.site.container, "error", err)
		return
	}
	w.site.log.Info("maintenance mode on again: the restored files do not hold it", "container", w.site.container)
}

// Leave closes the window with maintenance left on and its marker kept: a
// restore that failed leaves the site closed to its users, and the next
// restore (or mbk restore --abandon) takes the window over. Maintenance is
// switched on again, in case what was restored (a dataroot without
// climaintenance.html) switched it off.
func (w *Window) Leave(ctx context.Context) {
	w.closed = true
	if !w.ours {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, offTimeout)
	defer cancel()
	if _, err := w.site.php(ctx, "--enable"); err != nil {
		w.site.log.Error("cannot switch maintenance mode on again after the failed restore", "container", w.site.container, "error", err)
		return
	}
	w.site.log.Warn("maintenance mode left on: the restore did not finish", "container", w.site.container)
}
