package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"aead.dev/minisign"
	"filippo.io/age"

	"github.com/mbk-backup/mbk/core/config"
	"github.com/mbk-backup/mbk/core/pool"
	"github.com/mbk-backup/mbk/core/repo"
)

// signingKey reads the pipeline's private key for a run: nil when the
// pipeline signs nothing. It is read before anything is copied, so that a
// key that is missing or wrong fails the run at once. A restore's safety
// copy on a machine without the key (a new machine restoring from a store)
// is committed unsigned, with a warning.
func (r *run) signingKey() (*minisign.PrivateKey, error) {
	sg := r.p.Signing
	if sg == nil {
		return nil, nil
	}
	unsigned := func(why string) (*minisign.PrivateKey, error) {
		r.warn(fmt.Sprintf("the safety copy is not signed (%s): restoring it needs --insecure-skip-signature", why))
		return nil, nil
	}
	if sg.PrivateKey == "" {
		if r.opts.safetyCopy() {
			return unsigned("the signing block names no private_key")
		}
		return nil, errors.New("the signing block names no private_key: this pipeline can check sets but not make them")
	}
	key, err := repo.ReadSigningKey(sg.PrivateKey, sg.Passphrase)
	if err != nil {
		if r.opts.safetyCopy() && errors.Is(err, os.ErrNotExist) {
			return unsigned("no private key " + sg.PrivateKey + " on this machine")
		}
		return nil, err
	}
	if pub, _ := key.Public().(minisign.PublicKey); !pub.Equal(sg.Public) {
		return nil, fmt.Errorf("signing key %s (key %X) does not match the signing block's public key (%X): the sets it signed would not verify", sg.PrivateKey, key.ID(), sg.Public.ID())
	}
	return &key, nil
}

// VerifySet checks a set as verify, restore and drill do: its signature
// against the pipeline's public key first (unless skipSignature, or the
// pipeline signs nothing), then every file (repo.Verify). A set whose
// signature fails is not read further: its content is untrusted input.
func VerifySet(ctx context.Context, p *config.Pipeline, dir string, identities []age.Identity, progress func(string, int64), skipSignature bool) []repo.Problem {
	if p.Signing != nil && !skipSignature {
		if probs := repo.CheckSignature(dir, p.Signing.Public); len(probs) > 0 {
			return probs
		}
	}
	probs := repo.Verify(ctx, dir, identities, progress)
	return append(probs, VerifyPool(ctx, dir, false, identities)...)
}

// VerifyPool checks the blobs a set references in its root's pool: each
// there, and with readData each still hashing to its name. A set that
// references no blob has nothing to check.
func VerifyPool(ctx context.Context, dir string, readData bool, identities []age.Identity) []repo.Problem {
	m, err := repo.ReadManifest(dir)
	if err != nil {
		return nil // repo.Verify reports it
	}
	pooled := false
	for _, a := range m.Artifacts {
		pooled = pooled || a.Pool != nil
	}
	refs, err := pool.ReadRefs(dir)
	if err != nil {
		return []repo.Problem{{File: pool.RefsFile, Reason: err.Error()}}
	}
	if !pooled && refs.Count() == 0 {
		return nil
	}
	if _, err := os.Stat(filepath.Join(dir, pool.RefsFile)); err != nil {
		return []repo.Problem{{File: pool.RefsFile, Reason: "missing: the manifest lists a pooled artifact"}}
	}
	pl, err := pool.OpenExisting(filepath.Dir(dir))
	if err == nil && pl == nil {
		err = fmt.Errorf("the set references %d pooled blobs and %s has no %s", refs.Count(), filepath.Dir(dir), pool.Dir)
	}
	if err != nil {
		return []repo.Problem{{File: pool.RefsFile, Reason: err.Error()}}
	}
	var out []repo.Problem
	for _, s := range pl.Check(ctx, refs.Blobs(), readData, identities, runtime.GOMAXPROCS(0)) {
		out = append(out, repo.Problem{File: pool.Dir, Reason: s})
	}
	return out
}
