package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"

	"github.com/mbk-backup/mbk/core/config"
	"github.com/mbk-backup/mbk/core/engine"
	"github.com/mbk-backup/mbk/core/repo"
)

type restoreFlags struct {
	pipeline       string
	only           string
	yes            bool
	clean          bool
	targetDatabase string
	targetVolume   string
	targetPath     string
	restoreOpts    []string
	identities     []string
	from           string
	noSafetyCopy   bool
	abandon        bool
	keepSpecial    bool
	fromPipeline   string
	toURL          string
	fromURL        string
	skipSignature  bool
}

func (a *app) restoreCmd() *cobra.Command {
	var f restoreFlags
	cmd := &cobra.Command{
		Use:   "restore FILE [SET] [--from STORE | --from-pipeline NAME --to-url URL]",
		Short: tr.T("Restore a set (the newest complete one by default): database and files"),
		Long: tr.T(`restore verifies the set, says what will be overwritten and asks you to type
the pipeline's name to confirm (--yes for scripts; without a terminal and
without --yes it refuses). It never starts from an incomplete or corrupt set.
Targets default to where the backup came from.

A restore over the site itself first takes a safety copy of it (a set of
kind pre-restore, kept 7 days whatever the retention says), and starts only
once that is committed; --no-safety-copy goes without. With a maintenance
block the site stays in maintenance mode until everything is restored. A
restore that fails leaves the site in maintenance mode and backups refused,
and says how to put the site back, try again, or (--abandon) accept it.

Once everything is restored, and before maintenance mode goes off, Moodle's
caches are purged and every session ended in the app container.

--from-pipeline NAME clones another pipeline's set into this one's site
(production into testing): this pipeline's confirmation and safety copy,
then, with --to-url, the old URL (recorded at backup) is replaced with this
site's in the database (admin/tool/replace/cli/replace.php) and e-mail is
switched off ($CFG->noemailever), so that the copy never mails real users.
NAME is a pipeline of FILE, or of another .hcl file in FILE's directory, or
PATH.hcl[:NAME].`),
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := signalContext(cmd.Context())
			defer stop()
			if f.only != "" && f.only != engine.OnlyDB && f.only != engine.OnlyFiles {
				return exitf(2, "--only takes db or files, not %q", f.only)
			}
			if f.abandon {
				if len(args) > 1 {
					return exitf(2, "--abandon takes no set")
				}
				return a.abandon(ctx, cmd.OutOrStdout(), args[0], f.pipeline)
			}
			pr, err := a.prepare(ctx, args[0], f.pipeline)
			if err != nil {
				return err
			}
			defer pr.close()
			p, stages := pr.p, pr.stages
			var set repo.Set
			var clone *engine.Clone
			source := p // the pipeline whose set this is
			if f.fromPipeline != "" {
				if f.from != "" {
					return exitf(2, "--from and --from-pipeline: give one (download the other pipeline's set with its own mbk restore --from first)")
				}
				sp, err := a.sourcePipeline(args[0], f.fromPipeline)
				if err != nil {
					return err
				}
				if sp.Root == p.Root {
					return exitf(2, "pipeline %q keeps its sets in this pipeline's root (%s): restore it without --from-pipeline", sp.Name, p.Root)
				}
				if set, err = findSet(sp, argAt(args, 1)); err != nil {
					return exitf(1, "%v", err)
				}
				clone = &engine.Clone{FromPipeline: sp.Name}
				source = sp
			} else if f.from != "" {
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
			if f.toURL != "" {
				if clone == nil {
					clone = &engine.Clone{}
				}
				clone.ToURL = f.toURL
				clone.FromURL = f.fromURL
				if clone.FromURL == "" {
					clone.FromURL = set.Manifest.WWWRoot
				}
				if clone.FromURL == "" {
					return exitf(2, "set %s recorded no site URL (its pipeline had no maintenance block, or cfg.php failed): give the old URL with --from-url", set.Name)
				}
			} else if f.fromURL != "" {
				return exitf(2, "--from-url goes with --to-url")
			} else if clone != nil {
				fmt.Fprintf(os.Stderr, "mbk: warning: --from-pipeline without --to-url: the copy keeps %s's URL in its database, and e-mail is not switched off\n", clone.FromPipeline)
				clone = nil
			}
			steps, err := engine.PlanRestore(stages, set.Manifest, f.only)
			if err != nil {
				return exitf(1, "%v", err)
			}
			options, diags := engine.BindRestore(steps, f.request(cmd))
			if diags.HasErrors() {
				writeDiags(os.Stderr, pr.loader, diags)
				return exitf(2, "the restore options are not valid: nothing was restored")
			}
			out := cmd.OutOrStdout()
			fmt.Fprintln(out, tr.T("Verifying set %s before restoring it...", set.Name))
			progress, stopBars := a.verifyProgress(set.Dir)
			ids, err := loadIdentities(f.identities)
			if err != nil {
				return err
			}
			if encrypted(set.Manifest) && len(ids) == 0 {
				return exitf(2, "set %s is encrypted: give its age identity with --identity FILE", set.Name)
			}
			// A clone's set is checked with its own pipeline's key.
			warnSkipSignature(source, f.skipSignature)
			probs := engine.VerifySet(ctx, source, set.Dir, ids, progress, f.skipSignature)
			stopBars()
			if len(probs) > 0 {
				for _, pr := range probs {
					fmt.Fprintf(out, "  BAD: %s\n", pr)
				}
				return exitf(1, "set %s failed verification: refusing to restore from it", set.Name)
			}
			// A set from a store another machine also writes to (or this
			// machine's own under its old name, or a clone's of this one's
			// name) says whose it is.
			me := thisMachine()
			switch other, sameName := me.other(set.Manifest.Host, set.Manifest.HostID); {
			case other && sameName:
				fmt.Fprintln(out, "\n"+tr.T("Set %s was made on another machine named %q, like this one (a clone of it?).", set.Name, set.Manifest.Host))
			case other:
				fmt.Fprintln(out, "\n"+tr.T("Set %s was made on host %q; this machine is %q.", set.Name, set.Manifest.Host, me.name))
			}
			if made := set.Manifest.Pipeline; f.fromPipeline != "" || (made != "" && made != p.Name) {
				// A set another pipeline made (a clone's, or one a renamed
				// pipeline left in the root) says so.
				fmt.Fprintln(out, "\n"+tr.T("Restoring set %s of pipeline %q into pipeline %q will OVERWRITE:", set.Name, set.Manifest.Pipeline, p.Name))
			} else {
				fmt.Fprintln(out, "\n"+tr.T("Restoring set %s of pipeline %q will OVERWRITE:", set.Name, p.Name))
			}
			for _, st := range steps {
				fmt.Fprintf(out, "  - %s\n", describeTarget(st, options[st.Stage]))
			}
			if clone != nil && clone.ToURL != "" {
				fmt.Fprintln(out, "  - "+tr.T("then the URL %s becomes %s in the database, and e-mail is switched off", clone.FromURL, clone.ToURL))
			}
			if !f.yes {
				if err := confirm(cmd.InOrStdin(), out, p.Name); err != nil {
					return err
				}
			}
			e := &engine.Engine{Host: pr.host, Log: a.log, Redact: a.redact, Version: version, Progress: a.progress(), Identities: ids}
			res, err := e.Restore(ctx, engine.RestoreJob{Pipeline: p, Stages: stages, Set: set.Name, Dir: set.Dir,
				Steps: steps, Options: options, NoSafetyCopy: f.noSafetyCopy, Args: f.args(cmd), Clone: clone})
			if err != nil {
				return exitf(1, "%s", a.redact.String(err.Error()))
			}
			fmt.Fprintln(out, tr.T("Set %s restored.", set.Name))
			for _, st := range res.Site {
				if st.Err != nil {
					fmt.Fprintf(out, "  FAILED %s: %s\n", st.Name, a.redact.String(st.Err.Error()))
				} else {
					fmt.Fprintf(out, "  done   %s: %s\n", st.Name, st.Result)
				}
			}
			if res.Safety != "" {
				fmt.Fprintln(out, tr.T("The site as it was before is kept in set %s (pre-restore): %s", res.Safety, engine.RestoreCommand(p, res.Safety)))
			}
			if failed := res.SiteFailed(); len(failed) > 0 {
				return exitf(3, "the data is restored, but %d step(s) in the app container failed: see above", len(failed))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&f.pipeline, "pipeline", "", tr.T("the pipeline, when the file has several"))
	cmd.Flags().StringVar(&f.only, "only", "", tr.T("restore only the database (db) or only the files (files)"))
	cmd.Flags().BoolVar(&f.yes, "yes", false, tr.T("do not ask for confirmation"))
	cmd.Flags().BoolVar(&f.clean, "clean", false, tr.T("empty a non-empty target first (database dropped and recreated, volume emptied)"))
	cmd.Flags().StringVar(&f.targetDatabase, "target-database", "", tr.T("restore the database under this name"))
	cmd.Flags().StringVar(&f.targetVolume, "target-volume", "", tr.T("restore the files into this Docker volume"))
	cmd.Flags().StringVar(&f.targetPath, "target-path", "", tr.T("restore the files into this host directory"))
	cmd.Flags().StringArrayVar(&f.restoreOpts, "restore-opt", nil, tr.T("set a stage's restore option: STAGE.NAME=VALUE (repeatable; `mbk plugins` lists each plugin's options)"))
	cmd.Flags().StringArrayVar(&f.identities, "identity", nil, tr.T("age identity file, to decrypt an encrypted set"))
	cmd.Flags().StringVar(&f.from, "from", "", tr.T("restore from the copy in this store stage (downloaded and verified first)"))
	cmd.Flags().BoolVar(&f.keepSpecial, "keep-special", false, tr.T("restore setuid/setgid bits, device files and FIFOs as archived (left out by default)"))
	cmd.Flags().BoolVar(&f.noSafetyCopy, "no-safety-copy", false, tr.T("restore over the site without first copying it (nothing will keep what is overwritten)"))
	cmd.Flags().StringVar(&f.fromPipeline, "from-pipeline", "", tr.T("restore a set of this other pipeline (e.g. production into testing): NAME, or PATH.hcl[:NAME]"))
	cmd.Flags().StringVar(&f.toURL, "to-url", "", tr.T("this site's URL: replaces the set's own in the database, and switches e-mail off (a clone)"))
	cmd.Flags().StringVar(&f.fromURL, "from-url", "", tr.T("with --to-url: the URL to replace, when the set recorded none"))
	skipSignatureFlag(cmd, &f.skipSignature)
	cmd.Flags().BoolVar(&f.abandon, "abandon", false, tr.T("end an unfinished restore without restoring: the site is accepted as it is and backups resume"))
	a.varFlag(cmd)
	return cmd
}

// abandon ends an unfinished restore (engine.Abandon).
func (a *app) abandon(ctx context.Context, out io.Writer, file, pipeline string) error {
	_, p, err := a.loadPipeline(file, pipeline)
	if err != nil {
		return err
	}
	e := &engine.Engine{Log: a.log, Redact: a.redact, Version: version}
	m, err := e.Abandon(ctx, p)
	if err != nil {
		return exitf(1, "%v", err)
	}
	if m == nil {
		fmt.Fprintln(out, tr.T("No restore of pipeline %q is unfinished: nothing to abandon.", p.Name))
		return nil
	}
	fmt.Fprintln(out, tr.T("The unfinished restore of set %s is abandoned: the site is taken as it is, and backups resume.", m.Set))
	if m.Safety != "" {
		fmt.Fprintln(out, tr.T("The site as it was before that restore stays in set %s: %s", m.Safety, engine.RestoreCommand(p, m.Safety)))
	}
	return nil
}

// args are the flags that shape this restore, as typed: a failure's advice
// repeats them.
func (f restoreFlags) args(cmd *cobra.Command) []string {
	var out []string
	for _, name := range []string{"only", "target-database", "target-volume", "target-path", "from-pipeline", "to-url", "from-url"} {
		if fl := cmd.Flags().Lookup(name); fl != nil && fl.Changed {
			out = append(out, "--"+name, fl.Value.String())
		}
	}
	if f.clean {
		out = append(out, "--clean")
	}
	if f.keepSpecial {
		out = append(out, "--keep-special")
	}
	for _, o := range f.restoreOpts {
		out = append(out, "--restore-opt", o)
	}
	return out
}

// request is what the flags ask of the restore; the stages' plugins say
// which of their options each flag sets (engine.BindRestore).
func (f restoreFlags) request(cmd *cobra.Command) engine.RestoreRequest {
	req := engine.RestoreRequest{Flags: map[string]string{}, Opts: f.restoreOpts}
	for flag, v := range map[string]string{"target-database": f.targetDatabase, "target-volume": f.targetVolume, "target-path": f.targetPath} {
		if cmd.Flags().Changed(flag) {
			req.Flags[flag] = v
		}
	}
	if f.clean {
		req.Flags["clean"] = "true"
	}
	if f.keepSpecial {
		req.Flags["keep-special"] = "true"
	}
	return req
}

// describeTarget says what a step restores, with which options.
func describeTarget(st engine.RestoreStep, opts engine.BoundOptions) string {
	var set []string
	for k, v := range opts.Set {
		set = append(set, k+"="+v)
	}
	sort.Strings(set)
	with := tr.T("where it was backed up from")
	if len(set) > 0 {
		with = strings.Join(set, ", ")
	}
	return tr.T("%s  ->  stage %s (%s)", st.Artifact.File, st.Stage.ID(), with)
}

// confirm asks for the pipeline's name, typed. Without a terminal it
// refuses: a script must say --yes.
func confirm(in io.Reader, out io.Writer, name string) error {
	f, ok := in.(*os.File)
	if !ok || !isatty.IsTerminal(f.Fd()) {
		return exitf(2, "refusing to restore without confirmation: stdin is not a terminal (use --yes in scripts)")
	}
	fmt.Fprint(out, "\n"+tr.T("Type the pipeline's name (%s) to go on: ", name))
	line, _ := bufio.NewReader(in).ReadString('\n')
	if strings.TrimSpace(line) != name {
		return exitf(1, "%s", tr.T("not confirmed: nothing was restored"))
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

// sourcePipeline finds the pipeline a clone restores from: ref is NAME (a
// pipeline of file, or of another .hcl file in its directory) or
// PATH.hcl[:NAME].
func (a *app) sourcePipeline(file, ref string) (*config.Pipeline, error) {
	if path, name, _ := strings.Cut(ref, ".hcl"); strings.HasSuffix(ref, ".hcl") || strings.HasPrefix(name, ":") {
		_, p, err := a.loadPipeline(path+".hcl", strings.TrimPrefix(name, ":"))
		return p, err
	}
	loader, err := a.loader()
	if err != nil {
		return nil, err
	}
	files := []string{file}
	others, _ := filepath.Glob(filepath.Join(filepath.Dir(file), "*.hcl"))
	sort.Strings(others)
	for _, o := range others {
		if abs, _ := filepath.Abs(o); abs != mustAbs(file) {
			files = append(files, o)
		}
	}
	for _, path := range files {
		f, diags := loader.Load(path)
		if f == nil {
			continue
		}
		for _, p := range f.Pipelines {
			if p.Name == ref {
				if diags.HasErrors() {
					writeDiags(os.Stderr, loader, diags)
					return nil, exitf(2, "%s, which defines pipeline %q, is not valid", path, ref)
				}
				return p, nil
			}
		}
	}
	return nil, exitf(2, "no pipeline %q in %s or the other .hcl files of %s: give PATH.hcl[:NAME]", ref, file, filepath.Dir(file))
}

func mustAbs(p string) string {
	abs, err := filepath.Abs(p)
	if err != nil {
		return p
	}
	return abs
}
