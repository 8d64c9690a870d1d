package engine

import (
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/mbk-backup/mbk/core/config"
	"github.com/mbk-backup/mbk/core/internal/wire"
	"github.com/mbk-backup/mbk/core/spec"
)

// Two stages as a restore sees them: a dump whose plugin answers
// --target-database and --clean, an archive that answers --target-path and
// --clean and has an option of its own.
func restoreStages() (*Stage, *Stage, []RestoreStep) {
	db := &Stage{Stage: &config.Stage{Kind: spec.KindDump, Plugin: "mysql", Name: "mysql"}, Schema: spec.Schema{
		Attributes: []spec.Attribute{{Name: "container", Type: spec.String}}, RestoreOptions: []spec.Attribute{
			{Name: "target_database", Type: spec.String, Flag: "target-database"},
			{Name: "replace", Type: spec.Bool, Flag: "clean"},
		}}}
	files := &Stage{Stage: &config.Stage{Kind: spec.KindArchive, Plugin: "notes", Name: "notes"}, Schema: spec.Schema{RestoreOptions: []spec.Attribute{
		{Name: "dir", Type: spec.String, Flag: "target-path"},
		{Name: "wipe", Type: spec.Bool, Flag: "clean"},
		{Name: "jobs", Type: spec.Int},
		{Name: "token", Type: spec.String, Sensitive: true},
	}}}
	return db, files, []RestoreStep{{Stage: db}, {Stage: files}}
}

func decoded(t *testing.T, s *Stage, b BoundOptions) cty.Value {
	t.Helper()
	v, err := wire.DecodeValue(b.Wire, s.Schema.RestoreOptions)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestBindRestore(t *testing.T) {
	db, files, steps := restoreStages()
	got, diags := BindRestore(steps, RestoreRequest{
		Flags: map[string]string{"target-database": "moodle_copy", "clean": "true", "target-path": "/srv/restore"},
		Opts:  []string{"notes.jobs=4", "notes.token=s3cret"},
	})
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	v := decoded(t, db, got[db])
	if v.GetAttr("target_database").AsString() != "moodle_copy" || !v.GetAttr("replace").True() {
		t.Errorf("dump options %#v", v)
	}
	v = decoded(t, files, got[files])
	if v.GetAttr("dir").AsString() != "/srv/restore" || !v.GetAttr("wipe").True() || v.GetAttr("jobs").AsBigFloat().String() != "4" {
		t.Errorf("archive options %#v", v)
	}
	if got[files].Set["token"] != "(sensitive)" || got[files].Set["jobs"] != "4" {
		t.Errorf("what is shown of the archive options: %v", got[files].Set)
	}

	// Nothing asked: every option null, the plugin's defaults apply.
	got, diags = BindRestore(steps, RestoreRequest{})
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	if v := decoded(t, db, got[db]); !v.GetAttr("target_database").IsNull() || !v.GetAttr("replace").IsNull() {
		t.Errorf("no options: %#v", v)
	}
}

func TestBindRestoreRefuses(t *testing.T) {
	_, _, steps := restoreStages()
	dbOnly := steps[:1]
	for _, tt := range []struct {
		name  string
		steps []RestoreStep
		req   RestoreRequest
		want  []string
	}{
		{"a flag no stage answers", dbOnly, RestoreRequest{Flags: map[string]string{"target-path": "/x"}},
			[]string{"--target-path", `dump "mysql" declares target_database (--target-database), replace (--clean)`}},
		{"an unknown option", steps, RestoreRequest{Opts: []string{"notes.jbos=4"}},
			[]string{`"notes.jbos=4"`, `stage archive "notes" declares no restore option "jbos"`, "jobs"}},
		{"a value of the wrong type", steps, RestoreRequest{Opts: []string{"notes.dir=/x", "mysql.replace=maybe"}},
			[]string{`restore option "replace" is a bool, not "maybe"`}},
		{"a stage setting is no restore option", steps, RestoreRequest{Opts: []string{"mysql.container=db2"}},
			[]string{`"container" is a setting of stage dump "mysql", not a restore option`}},
		{"an unknown stage", steps, RestoreRequest{Opts: []string{"db.target_database=x"}},
			[]string{`no stage of this restore is named "db"`, "mysql, notes"}},
		{"not STAGE.NAME=VALUE", steps, RestoreRequest{Opts: []string{"jobs=4"}},
			[]string{"expected STAGE.NAME=VALUE"}},
		{"a fraction for an Int", steps, RestoreRequest{Opts: []string{"notes.jobs=2.5"}},
			[]string{`archive "notes"`, `restore option "jobs" is a whole number, not "2.5"`}},
		{"a word for an Int", steps, RestoreRequest{Opts: []string{"notes.jobs=many"}},
			[]string{`restore option "jobs" is a whole number, not "many"`}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, diags := BindRestore(tt.steps, tt.req)
			if !diags.HasErrors() {
				t.Fatal("accepted")
			}
			text := diagText(diags)
			for _, w := range tt.want {
				if !strings.Contains(text, w) {
					t.Errorf("missing %q in:\n%s", w, text)
				}
			}
		})
	}
}

// A required option left out is refused, saying how to give it.
func TestBindRestoreRequired(t *testing.T) {
	s := &Stage{Stage: &config.Stage{Kind: spec.KindDump, Plugin: "pg", Name: "pg"}, Schema: spec.Schema{RestoreOptions: []spec.Attribute{
		{Name: "role", Type: spec.String, Required: true},
	}}}
	_, diags := BindRestore([]RestoreStep{{Stage: s}}, RestoreRequest{})
	if text := diagText(diags); !strings.Contains(text, `the restore option "role" is required: give --restore-opt pg.role=VALUE`) {
		t.Errorf("got:\n%s", text)
	}
}

func diagText(diags hcl.Diagnostics) string {
	var b strings.Builder
	for _, d := range diags {
		b.WriteString(d.Summary + ": " + d.Detail + "\n")
	}
	return b.String()
}
