package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"

	"github.com/mbk-backup/mbk/core/engine"
	"github.com/mbk-backup/mbk/core/repo"
	"github.com/mbk-backup/mbk/core/sdk"
)

type restoreFlags struct {
	pipeline       string
	only           string
	yes            bool
	clean          bool
	targetDatabase string
	targetVolume   string
	targetPath     string
	identities     []string
	from           string
}

func (a *app) restoreCmd() *cobra.Command {
	var f restoreFlags
	cmd := &cobra.Command{
		Use:   "restore FILE [SET] [--from STORE]",
		Short: "Restore a set (the newest complete one by default): database and files",
		Long: `restore verifies the set, says what will be overwritten and asks you to type
the pipeline's name to confirm (--yes for scripts; without a terminal and
without --yes it refuses). It never starts from an incomplete or corrupt set.
Targets default to where the backup came from.`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := signalContext(cmd.Context())
			defer stop()
			if f.only != "" && f.only != engine.OnlyDB && f.only != engine.OnlyFiles {
				return exitf(2, "--only takes db or files, not %q", f.only)
			}
			pr, err := a.prepare(ctx, args[0], f.pipeline)
			if err != nil {
				return err
			}
			defer pr.close()
			p, stages := pr.p, pr.stages
			var set repo.Set
			if f.from != "" {
				// From a store: download into a hidden directory under the
				// root (the next run removes it if we are killed), then go
				// on exactly as from a local set.
				if set, err = a.fetchForRestore(ctx, pr, f.from, argAt(args, 1)); err != nil {
					return err
				}
				defer os.RemoveAll(filepath.Dir(set.Dir))
			} else if set, err = findSet(p, argAt(args, 1)); err != nil {
				return exitf(1, "%v", err)
			}
			if !set.Complete {
				return exitf(1, "set %s is not complete (%s): refusing to restore from it", set.Name, set.Problem)
			}
			steps, err := engine.PlanRestore(stages, set.Manifest, f.only)
			if err != nil {
				return exitf(1, "%v", err)
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "Verifying set %s before restoring it...\n", set.Name)
			progress, stopBars := a.verifyProgress(set.Dir)
			ids, err := loadIdentities(f.identities)
			if err != nil {
				return err
			}
			if encrypted(set.Manifest) && len(ids) == 0 {
				return exitf(2, "set %s is encrypted: give its age identity with --identity FILE", set.Name)
			}
			probs := repo.Verify(ctx, set.Dir, ids, progress)
			stopBars()
			if len(probs) > 0 {
				for _, pr := range probs {
					fmt.Fprintf(out, "  BAD: %s\n", pr)
				}
				return exitf(1, "set %s failed verification: refusing to restore from it", set.Name)
			}
			options := f.options()
			fmt.Fprintf(out, "\nRestoring set %s of pipeline %q will OVERWRITE:\n", set.Name, p.Name)
			for _, st := range steps {
				fmt.Fprintf(out, "  - %s\n", describeTarget(st, options[st.Stage.Kind]))
			}
			if !f.yes {
				if err := confirm(cmd.InOrStdin(), out, p.Name); err != nil {
					return err
				}
			}
			e := &engine.Engine{Host: pr.host, Log: a.log, Redact: a.redact, Version: version, Progress: a.progress(), Identities: ids}
			if err := e.Restore(ctx, p, set.Dir, steps, options); err != nil {
				return exitf(1, "%s", a.redact.String(err.Error()))
			}
			fmt.Fprintf(out, "Set %s restored.\n", set.Name)
			return nil
		},
	}
	cmd.Flags().StringVar(&f.pipeline, "pipeline", "", "the pipeline, when the file has several")
	cmd.Flags().StringVar(&f.only, "only", "", "restore only the database (db) or only the files (files)")
	cmd.Flags().BoolVar(&f.yes, "yes", false, "do not ask for confirmation")
	cmd.Flags().BoolVar(&f.clean, "clean", false, "empty a non-empty target first (database dropped and recreated, volume emptied)")
	cmd.Flags().StringVar(&f.targetDatabase, "target-database", "", "restore the database under this name")
	cmd.Flags().StringVar(&f.targetVolume, "target-volume", "", "restore the files into this Docker volume")
	cmd.Flags().StringVar(&f.targetPath, "target-path", "", "restore the files into this host directory")
	cmd.Flags().StringArrayVar(&f.identities, "identity", nil, "age identity file, to decrypt an encrypted set")
	cmd.Flags().StringVar(&f.from, "from", "", "restore from the copy in this store stage (downloaded and verified first)")
	a.varFlag(cmd)
	return cmd
}

// options maps the command's flags to each kind's plugin options.
func (f restoreFlags) options() map[string]map[string]string {
	db, files := map[string]string{}, map[string]string{}
	if f.targetDatabase != "" {
		db["target_database"] = f.targetDatabase
	}
	if f.targetVolume != "" {
		files["target_volume"] = f.targetVolume
	}
	if f.targetPath != "" {
		files["target_path"] = f.targetPath
	}
	if f.clean {
		db["replace"] = "true"
		files["clean"] = "true"
	}
	return map[string]map[string]string{sdk.KindDump: db, sdk.KindArchive: files}
}

// describeTarget says, from what the backup recorded and the options, what
// a step will overwrite.
func describeTarget(st engine.RestoreStep, opts map[string]string) string {
	d := detailsOf(st.Artifact.Details)
	switch st.Stage.Kind {
	case sdk.KindDump:
		db := firstOf(opts["target_database"], d["database"], st.Artifact.Name)
		return fmt.Sprintf("database %q in container %q  <-  %s", db, firstOf(d["container"], "?"), st.Artifact.File)
	default:
		target := firstOf(opts["target_path"], opts["target_volume"], d["volume"], d["path"], d["source"])
		return fmt.Sprintf("files in %s  <-  %s", target, st.Artifact.File)
	}
}

func firstOf(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

// confirm asks for the pipeline's name, typed. Without a terminal it
// refuses: a script must say --yes.
func confirm(in io.Reader, out io.Writer, name string) error {
	f, ok := in.(*os.File)
	if !ok || !isatty.IsTerminal(f.Fd()) {
		return exitf(2, "refusing to restore without confirmation: stdin is not a terminal (use --yes in scripts)")
	}
	fmt.Fprintf(out, "\nType the pipeline's name (%s) to go on: ", name)
	line, _ := bufio.NewReader(in).ReadString('\n')
	if strings.TrimSpace(line) != name {
		return exitf(1, "not confirmed: nothing was restored")
	}
	return nil
}

func encrypted(m *repo.Manifest) bool {
	for _, a := range m.Artifacts {
		if a.Encryption != "" {
			return true
		}
	}
	return false
}
