package config

import (
	"fmt"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// Maintenance is a pipeline's `maintenance {}` block: how to run Moodle's
// admin/cli/maintenance.php in the app container.
type Maintenance struct {
	Container      string `hcl:"container,optional"`
	ComposeProject string `hcl:"compose_project,optional"`
	ComposeService string `hcl:"compose_service,optional"`
	// User is the web server's user: Moodle's CLI scripts must run as it.
	User string `hcl:"user,optional"`
	// PHP is the interpreter, Script the path of maintenance.php.
	PHP    string `hcl:"php,optional"`
	Script string `hcl:"script,optional"`

	DeclRange hcl.Range
}

// Defaults for the official Moodle images' layout.
const (
	DefaultMaintenanceUser   = "www-data"
	DefaultMaintenancePHP    = "php"
	DefaultMaintenanceScript = "/var/www/html/admin/cli/maintenance.php"
)

func decodeMaintenance(blk *hclsyntax.Block, ctx *hcl.EvalContext) (*Maintenance, hcl.Diagnostics) {
	m := &Maintenance{DeclRange: blk.DefRange()}
	if len(blk.Labels) != 0 {
		return nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Unexpected label",
			Detail: "The maintenance block takes no label.", Subject: blk.LabelRanges[0].Ptr()}}
	}
	diags := gohcl.DecodeBody(blk.Body, ctx, m)
	if diags.HasErrors() {
		return nil, diags
	}
	byName := m.Container != ""
	byCompose := m.ComposeProject != "" || m.ComposeService != ""
	switch {
	case byName && byCompose:
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Conflicting settings",
			Detail: "Name the app container either by container or by compose_project and compose_service, not both.", Subject: m.DeclRange.Ptr()})
	case !byName && !byCompose:
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Missing app container",
			Detail: "The maintenance block needs container (or compose_project and compose_service): the container that runs Moodle's PHP code.", Subject: m.DeclRange.Ptr()})
	case byCompose && (m.ComposeProject == "" || m.ComposeService == ""):
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Incomplete compose settings",
			Detail: "compose_project and compose_service go together.", Subject: m.DeclRange.Ptr()})
	}
	if m.User == "" {
		m.User = DefaultMaintenanceUser
	}
	if m.PHP == "" {
		m.PHP = DefaultMaintenancePHP
	}
	if m.Script == "" {
		m.Script = DefaultMaintenanceScript
	}
	return m, diags
}

// Target says which container, for messages.
func (m *Maintenance) Target() string {
	if m.Container != "" {
		return fmt.Sprintf("container %q", m.Container)
	}
	return fmt.Sprintf("compose service %q of project %q", m.ComposeService, m.ComposeProject)
}
