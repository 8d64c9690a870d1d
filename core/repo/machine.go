package repo

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
)

// The files MachineID reads: the firmware's UUID of this machine (which
// hypervisors such as Proxmox and libvirt give a cloned VM anew) and systemd's machine id (which a clone
// keeps unless someone resets it, but which tells apart two containers
// on one host).
var machineFiles = struct{ uuid, machineID, dbusID string }{
	"/sys/class/dmi/id/product_uuid", "/etc/machine-id", "/var/lib/dbus/machine-id",
}

// MachineID names this machine in a set's manifest beside its host name,
// which a cloned server keeps: a SHA-256 of the firmware's UUID and the
// machine id, cut to 24 hex digits (neither is written out as such). It is
// "" when mbk cannot know it: the UUID is there but unreadable (it is
// root's alone, so a run by another user would otherwise name the
// machine differently), or neither file is there. Boards that report a
// placeholder UUID (all zeros or all Fs) count as having none.
func MachineID() string {
	uuid, err := os.ReadFile(machineFiles.uuid)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return ""
	}
	uuid = bytes.TrimSpace(uuid)
	if placeholderUUID(uuid) {
		uuid = nil
	}
	var mid []byte
	for _, f := range []string{machineFiles.machineID, machineFiles.dbusID} {
		if b, err := os.ReadFile(f); err == nil && len(bytes.TrimSpace(b)) > 0 {
			mid = bytes.TrimSpace(b)
			break
		}
	}
	if len(uuid) == 0 && len(mid) == 0 {
		return ""
	}
	h := sha256.New()
	h.Write([]byte("mbk machine\x00"))
	h.Write(bytes.ToLower(uuid))
	h.Write([]byte{0})
	h.Write(mid)
	return hex.EncodeToString(h.Sum(nil))[:24]
}

// placeholderUUID reports a UUID of one repeated digit (0 or f), the
// values firmware without a real one reports.
func placeholderUUID(u []byte) bool {
	digits := bytes.ReplaceAll(bytes.ToLower(u), []byte("-"), nil)
	return len(digits) == 0 || len(bytes.Trim(digits, "0")) == 0 || len(bytes.Trim(digits, "f")) == 0
}
