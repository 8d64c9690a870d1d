package repo

import (
	"os"
	"path/filepath"
	"testing"
)

// TestMachineID: the id follows the firmware's UUID and the machine id,
// is the same for a UUID however it is written, is "" when the UUID is
// there but cannot be read, and when there is nothing to go by.
func TestMachineID(t *testing.T) {
	dir := t.TempDir()
	old := machineFiles
	t.Cleanup(func() { machineFiles = old })
	machineFiles.uuid = filepath.Join(dir, "product_uuid")
	machineFiles.machineID = filepath.Join(dir, "machine-id")
	machineFiles.dbusID = filepath.Join(dir, "dbus-machine-id")
	write := func(file, content string) {
		t.Helper()
		os.RemoveAll(file)
		if content == "-" {
			return
		}
		if err := os.WriteFile(file, []byte(content), 0o400); err != nil {
			t.Fatal(err)
		}
	}
	id := func(uuid, mid, dbus string) string {
		t.Helper()
		write(machineFiles.uuid, uuid)
		write(machineFiles.machineID, mid)
		write(machineFiles.dbusID, dbus)
		return MachineID()
	}
	const u1, u2 = "4C4C4544-0042-3510-8052-B4C04F4A4E32\n", "4c4c4544-0042-3510-8052-b4c04f4a4e33\n"
	const m1, m2 = "3d1219c7c4c5404aaa1f6d2a48adfda4\n", "9a0b4fd7e27e4a1c8f0a8c1c25a6e701\n"
	a := id(u1, m1, "-")
	if len(a) != 24 {
		t.Fatalf("id %q: want 24 hex digits", a)
	}
	for _, c := range []struct {
		what, uuid, mid, dbus string
		same                  bool
	}{
		{"the same files again", u1, m1, "-", true},
		{"the UUID in lower case, without its newline", "4c4c4544-0042-3510-8052-b4c04f4a4e32", m1, "-", true},
		{"another UUID (a cloned VM)", u2, m1, "-", false},
		{"another machine id (a container beside this one)", u1, m2, "-", false},
		{"the machine id only in dbus's file", u1, "-", m1, true},
		{"an empty /etc/machine-id, dbus's file read instead", u1, "", m1, true},
	} {
		if got := id(c.uuid, c.mid, c.dbus); (got == a) != c.same || got == "" {
			t.Errorf("%s: id %q, first %q, want them the same: %v", c.what, got, a, c.same)
		}
	}
	// No firmware UUID (this kind of VM, ARM boards), or a placeholder:
	// the machine id alone names the machine.
	noUUID := id("-", m1, "-")
	for _, placeholder := range []string{"00000000-0000-0000-0000-000000000000\n", "FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF", ""} {
		if got := id(placeholder, m1, "-"); got != noUUID || got == "" || got == a {
			t.Errorf("UUID %q: id %q, want %q (none), not %q", placeholder, got, noUUID, a)
		}
	}
	if got := id("-", "-", "-"); got != "" {
		t.Errorf("no UUID, no machine id: id %q, want none", got)
	}
	// A UUID that is there but cannot be read (a run by a user other
	// than root): no id, rather than one that differs from root's runs.
	write(machineFiles.uuid, "-")
	if err := os.Mkdir(machineFiles.uuid, 0o700); err != nil {
		t.Fatal(err)
	}
	write(machineFiles.machineID, m1)
	if got := MachineID(); got != "" {
		t.Errorf("an unreadable UUID: id %q, want none", got)
	}
}
