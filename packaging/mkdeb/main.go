// Command mkdeb builds mbk's Debian package with nfpm from a tree that
// `make install DESTDIR=... PREFIX=/usr` laid out, so the package holds
// exactly what make install installs, plus /etc/mbk. Run by `make deb`.
package main

import (
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"

	"github.com/goreleaser/nfpm/v2"
	_ "github.com/goreleaser/nfpm/v2/deb" // registers the deb packager
	"github.com/goreleaser/nfpm/v2/files"
)

func main() {
	root := flag.String("root", "", "the tree make install laid out (its DESTDIR)")
	version := flag.String("version", "", "mbk's version (git describe)")
	envFile := flag.String("env", "", "the example .env, installed as /etc/mbk/moodle.env")
	scripts := flag.String("scripts", "", "directory holding postinst, prerm, postrm")
	out := flag.String("out", ".", "directory the package is written to")
	flag.Parse()
	path, err := build(*root, *version, *envFile, *scripts, *out)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mkdeb:", err)
		os.Exit(1)
	}
	fmt.Println(path)
}

// debVersion turns git describe's output into a Debian version: v1.2.3 is
// 1.2.3, v1.2.3-4-gabc is 1.2.3+4.gabc, and a bare commit (no tag yet)
// 0.0~git.abc (even when the hash starts with a digit), which sorts below
// any release.
func debVersion(v string) string {
	v = strings.TrimPrefix(v, "v")
	v = regexp.MustCompile(`[^A-Za-z0-9.+~]+`).ReplaceAllString(v, ".")
	m := regexp.MustCompile(`^(\d+\.\d+(?:\.\d+)?)(?:\.(.+))?$`).FindStringSubmatch(v)
	switch {
	case m == nil:
		return "0.0~git." + v
	case m[2] != "":
		return m[1] + "+" + m[2]
	}
	return v
}

func build(root, version, envFile, scripts, outDir string) (string, error) {
	if root == "" || version == "" || envFile == "" || scripts == "" {
		return "", fmt.Errorf("-root, -version, -env and -scripts are required")
	}
	owned := func(mode fs.FileMode) *files.ContentFileInfo {
		return &files.ContentFileInfo{Owner: "root", Group: "root", Mode: mode}
	}
	var contents files.Contents
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		st, err := d.Info()
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		// Modes as installed: the trust rules refuse a plugin writable
		// by anyone but root.
		contents = append(contents, &files.Content{Source: path, Destination: "/" + filepath.ToSlash(rel), FileInfo: owned(st.Mode().Perm())})
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("read %s: %w", root, err)
	}
	if len(contents) == 0 {
		return "", fmt.Errorf("%s is empty: run make install DESTDIR=%s first", root, root)
	}
	contents = append(contents,
		// The passwords' file: 0600 as mbk demands of an env_file holding
		// secrets, and a conffile, so an upgrade keeps the administrator's.
		&files.Content{Source: envFile, Destination: "/etc/mbk/moodle.env", Type: files.TypeConfigNoReplace, FileInfo: owned(0o600)},
		&files.Content{Destination: "/etc/mbk/pipelines", Type: files.TypeDir, FileInfo: owned(0o755)},
	)
	info := nfpm.WithDefaults(&nfpm.Info{
		Name:          "mbk",
		Arch:          runtime.GOARCH,
		Platform:      "linux",
		Version:       debVersion(version),
		VersionSchema: "none",
		Section:       "admin",
		Priority:      "optional",
		Maintainer:    "mbk maintainers <mbk@example.org>",
		Description: "Backups of Moodle sites on Docker, by plugin pipelines\n" +
			"mbk dumps the database and archives moodledata of Moodle sites running in\n" +
			"Docker into dated, checksummed sets, applies retention, copies off-site and\n" +
			"e-mails the outcome; restores, drills and a menu for the operator.",
		Homepage: "https://github.com/mbk-backup/mbk",
		License:  "MIT",
		Overridables: nfpm.Overridables{
			// Static binaries: no library to depend on. cron for
			// `mbk cron install`; Docker is where the sites run, often
			// not from Debian's docker.io.
			Recommends: []string{"cron"},
			Suggests:   []string{"docker.io | docker-ce"},
			Contents:   contents,
			Umask:      0o022,
			Scripts: nfpm.Scripts{
				PostInstall: filepath.Join(scripts, "postinst"),
				PreRemove:   filepath.Join(scripts, "prerm"),
				PostRemove:  filepath.Join(scripts, "postrm"),
			},
		},
	})
	if err := nfpm.PrepareForPackager(info, "deb"); err != nil {
		return "", err
	}
	pkg, err := nfpm.Get("deb")
	if err != nil {
		return "", err
	}
	path := filepath.Join(outDir, pkg.ConventionalFileName(info))
	f, err := os.Create(path + ".tmp")
	if err != nil {
		return "", err
	}
	defer os.Remove(f.Name())
	if err := pkg.Package(info, f); err != nil {
		f.Close()
		return "", fmt.Errorf("package: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	return path, os.Rename(f.Name(), path)
}
