package main

import (
	"archive/tar"
	"fmt"

	"github.com/hashicorp/go-hclog"
)

// specialsLogged is how many skipped or changed entries get a log line each;
// the rest are counted in one line at the end.
const specialsLogged = 20

// policy decides what a restore does with the entries that can hurt the
// machine it runs on, not just the site: devices and FIFOs, setuid and setgid
// files, files owned by root. Moodle's dataroot legitimately holds none of
// them (its files belong to the web server's user), so without keep_special:
//
//   - character and block devices and FIFOs are skipped (a device node in a
//     volume gives whoever can write the volume the device; a FIFO hangs the
//     PHP process that opens it), and so is a hard link to a skipped entry;
//   - a setuid or setgid regular file is restored without those bits rather
//     than skipped: its content may be a site file that happens to carry
//     them, and without the bits it is inert. Directories keep setgid: it
//     only makes new files inherit the group, and dataroots use it;
//   - an entry owned by uid or gid 0 gets the owner of the archive's root
//     entry instead, when that one is not root: a root-owned file inside a
//     www-data dataroot is one Moodle cannot change or delete.
//
// Each skipped or changed entry is logged (the first specialsLogged) and
// counted in the restore's summary. keep_special=true restores everything as
// archived.
type policy struct {
	keep             bool
	log              hclog.Logger
	rootUID, rootGID int // of the archive's "." entry; 0 when unknown or root
	skippedNames     map[string]bool
	sawRoot          bool // the archive had a "." entry
	logged           int
}

func newPolicy(keep bool, log hclog.Logger) *policy {
	return &policy{keep: keep, log: log, skippedNames: map[string]bool{}}
}

func (p *policy) note(msg string, args ...any) {
	if p.logged < specialsLogged {
		p.log.Warn(msg, args...)
	}
	p.logged++
}

// apply returns false when e is not restored, and may change e's header
// (a copy: the caller's header is left alone).
func (p *policy) apply(e *entry, st *stats) bool {
	h := e.hdr
	if e.name == "." {
		p.rootUID, p.rootGID, p.sawRoot = h.Uid, h.Gid, true
	}
	if p.keep {
		return true
	}
	switch h.Typeflag {
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		p.skippedNames[e.name] = true
		st.skipped++
		p.note("not restored: "+kindName(h.Typeflag)+" (set keep_special=true to restore it)", "entry", e.name)
		return false
	case tar.TypeLink:
		if p.skippedNames[e.link] {
			p.skippedNames[e.name] = true
			st.skipped++
			p.note("not restored: hard link to an entry that was not restored", "entry", e.name, "link", e.link)
			return false
		}
	}
	c := *h
	changed := false
	if c.Typeflag == tar.TypeReg && c.Mode&0o6000 != 0 {
		p.note("restored without its setuid/setgid bits", "entry", e.name, "mode", fmt.Sprintf("%04o", c.Mode&0o7777))
		c.Mode &^= 0o6000
		st.stripped++
		changed = true
	}
	if e.name != "." && ((c.Uid == 0 && p.rootUID != 0) || (c.Gid == 0 && p.rootGID != 0)) {
		p.note("owned by root in the archive: restored with the dataroot's owner", "entry", e.name,
			"owner", fmt.Sprintf("%d:%d", p.rootUID, p.rootGID))
		if c.Uid == 0 {
			c.Uid = p.rootUID
		}
		if c.Gid == 0 {
			c.Gid = p.rootGID
		}
		st.owners++
		changed = true
	}
	if changed {
		e.hdr = &c
	}
	return true
}

// done logs how many entries were not logged one by one.
func (p *policy) done() {
	if p.logged > specialsLogged {
		p.log.Warn(fmt.Sprintf("... and %d more entries skipped or changed, as above", p.logged-specialsLogged))
	}
}

func kindName(typ byte) string {
	switch typ {
	case tar.TypeFifo:
		return "FIFO"
	case tar.TypeChar, tar.TypeBlock:
		return typeName(typ)
	}
	return fmt.Sprintf("type %q", typ)
}
