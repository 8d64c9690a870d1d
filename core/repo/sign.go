package repo

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"aead.dev/minisign"
)

// SignatureExt names a signed file's signature, in minisign's format and
// beside it as minisign puts it: `minisign -Vm SHA256SUMS -p key.pub` in
// the set's directory checks SHA256SUMS.minisig.
const SignatureExt = ".minisig"

// SignedFiles are the files of a set that carry a signature: SHA256SUMS
// pins every artifact and info file, the manifest what each artifact is
// (its hashes, compression and encryption) and which set it is.
var SignedFiles = []string{SumsFile, ManifestFile}

// IsSignature reports whether a file of a set is one of its signatures.
func IsSignature(name string) bool { return strings.HasSuffix(name, SignatureExt) }

// ReadSigningKey reads a minisign private key file, decrypting it with the
// passphrase when it was made with one.
func ReadSigningKey(path, passphrase string) (minisign.PrivateKey, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return minisign.PrivateKey{}, fmt.Errorf("signing key: %w", err)
	}
	var key minisign.PrivateKey
	switch {
	case minisign.IsEncrypted(raw) && passphrase == "":
		return key, fmt.Errorf("signing key %s is encrypted: set the signing block's passphrase", path)
	case minisign.IsEncrypted(raw):
		key, err = minisign.DecryptKey(passphrase, raw)
		if err != nil {
			return key, fmt.Errorf("signing key %s: the passphrase does not decrypt it", path)
		}
	default:
		if err := key.UnmarshalText(raw); err != nil {
			return key, fmt.Errorf("signing key %s: %w", path, err)
		}
	}
	return key, nil
}

// trustedComment binds a signature to one file of one set: a signature
// moved to another set, or to the other file, does not verify there. It
// starts as minisign's own (timestamp, file, hashed).
func trustedComment(file, set string, now time.Time) string {
	return fmt.Sprintf("timestamp:%d\tfile:%s\thashed\tset:%s", now.Unix(), file, set)
}

// Sign writes the signature of each of SignedFiles of the set in dir
// (durably: the caller commits the set after). set is the set's name.
func Sign(dir, set string, key minisign.PrivateKey) error {
	for _, name := range SignedFiles {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return err
		}
		r := minisign.NewReader(bytes.NewReader(b))
		if _, err := io.Copy(io.Discard, r); err != nil {
			return err
		}
		sig := r.SignWithComments(key, trustedComment(name, set, time.Now()),
			"signature from mbk signing key "+strings.ToUpper(strconv.FormatUint(key.ID(), 16)))
		if err := WriteFileSync(filepath.Join(dir, name+SignatureExt), sig); err != nil {
			return err
		}
	}
	return nil
}

// CheckSignature checks the signatures of the set in dir against the public
// key: each of SignedFiles must carry one, made by that key, over its
// current content, for this set and this file. It returns what is wrong.
func CheckSignature(dir string, pub minisign.PublicKey) []Problem {
	set := filepath.Base(dir)
	var probs []Problem
	for _, name := range SignedFiles {
		if reason := checkSignature(dir, set, name, pub); reason != "" {
			probs = append(probs, Problem{File: name + SignatureExt, Reason: reason})
		}
	}
	return probs
}

func checkSignature(dir, set, name string, pub minisign.PublicKey) string {
	raw, err := os.ReadFile(filepath.Join(dir, name+SignatureExt))
	if errors.Is(err, os.ErrNotExist) {
		return "missing: the set is not signed"
	}
	if err != nil {
		return err.Error()
	}
	var sig minisign.Signature
	if err := sig.UnmarshalText(raw); err != nil {
		return fmt.Sprintf("not a minisign signature: %v", err)
	}
	if sig.KeyID != pub.ID() {
		return fmt.Sprintf("made by key %X, not by the pipeline's public key %X", sig.KeyID, pub.ID())
	}
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return fmt.Sprintf("%s: %v", name, err)
	}
	r := minisign.NewReader(bytes.NewReader(b))
	if _, err := io.Copy(io.Discard, r); err != nil {
		return err.Error()
	}
	if !r.Verify(pub, raw) {
		return fmt.Sprintf("does not verify: %s changed since it was signed", name)
	}
	fields := map[string]string{}
	for _, f := range strings.Split(sig.TrustedComment, "\t") {
		k, v, _ := strings.Cut(f, ":")
		fields[k] = v
	}
	if fields["file"] != name || fields["set"] != set {
		return fmt.Sprintf("signs file %q of set %q, not %s of set %s", fields["file"], fields["set"], name, set)
	}
	return ""
}

// ageHeader starts every age file.
var ageHeader = []byte("age-encryption.org/v1\n")

// checkEncryption compares what the manifest says of an artifact's
// encryption with the file itself: a plaintext file where the manifest
// says age, or the reverse, is a downgraded or forged set.
func checkEncryption(dir string, a Artifact) *Problem {
	f, err := os.Open(filepath.Join(dir, a.File))
	if err != nil {
		return nil // the hash check reports it
	}
	defer f.Close()
	head := make([]byte, len(ageHeader))
	n, _ := io.ReadFull(f, head)
	isAge := bytes.Equal(head[:n], ageHeader)
	switch {
	case a.Encryption != "" && a.Encryption != "age":
		return &Problem{File: a.File, Reason: fmt.Sprintf("the manifest names an unknown encryption %q", a.Encryption)}
	case a.Encryption == "age" && !isAge:
		return &Problem{File: a.File, Reason: "the manifest says it is encrypted with age, but the file is not an age file: a downgraded set"}
	case a.Encryption == "" && isAge:
		return &Problem{File: a.File, Reason: "the file is encrypted with age, but the manifest says it is not"}
	}
	return nil
}
