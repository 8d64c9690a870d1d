package main

import (
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"aead.dev/minisign"
	"github.com/spf13/cobra"

	"github.com/mbk-backup/mbk/core/config"
)

func (a *app) keyCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "key generate",
		Short: tr.T("Make the key pair that signs each set"),
	}
	cmd.AddCommand(a.keyGenerateCmd())
	return cmd
}

func (a *app) keyGenerateCmd() *cobra.Command {
	var public, passphraseEnv string
	cmd := &cobra.Command{
		Use:   "generate PRIVATE_KEY_FILE [--public FILE] [--passphrase-env NAME]",
		Short: tr.T("Write a new Ed25519 signing key pair in minisign's format"),
		Long: tr.T(`generate writes a new minisign key pair (Ed25519): the private key to
PRIVATE_KEY_FILE (mode 0600; it stays on the backup host) and the public key
to --public (PRIVATE_KEY_FILE with .pub for .key by default), then prints
the signing block for the pipeline. minisign reads both files, and checks a
set by hand: minisign -Vm SHA256SUMS -p KEY.pub.

--passphrase-env NAME encrypts the private key with the passphrase in the
environment variable NAME (never on the command line); the pipeline's
signing block then needs passphrase = env("NAME"), kept in its env_file.
An existing file is never overwritten.`),
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			private := args[0]
			if public == "" {
				public = strings.TrimSuffix(private, ".key") + ".pub"
			}
			if public == private {
				return exitf(2, "the public key would overwrite the private key: give --public FILE")
			}
			passphrase := ""
			if passphraseEnv != "" {
				passphrase = os.Getenv(passphraseEnv)
				if passphrase == "" {
					return exitf(2, "--passphrase-env %s: the variable is empty or not set", passphraseEnv)
				}
			}
			pub, key, err := minisign.GenerateKey(rand.Reader)
			if err != nil {
				return exitf(1, "generate a key: %v", err)
			}
			var privText []byte
			if passphrase != "" {
				privText, err = minisign.EncryptKey(passphrase, key)
			} else {
				privText, err = key.MarshalText()
			}
			if err != nil {
				return exitf(1, "encode the private key: %v", err)
			}
			pubText, _ := pub.MarshalText()
			if err := writeNew(private, append(privText, '\n'), 0o600); err != nil {
				return exitf(1, "%v", err)
			}
			if err := writeNew(public, append(pubText, '\n'), 0o644); err != nil {
				os.Remove(private)
				return exitf(1, "%v", err)
			}
			absPriv, _ := filepath.Abs(private)
			out := cmd.OutOrStdout()
			how := "not encrypted: keep it readable by root only"
			if passphrase != "" {
				how = "encrypted with the passphrase in $" + passphraseEnv
			}
			fmt.Fprintf(out, "private key: %s (%s)\npublic key:  %s\n\n", absPriv, how, public)
			fmt.Fprintf(out, "Add to the pipeline:\n\n  signing {\n    private_key = %q\n    public_key  = %q\n", absPriv, pub.String())
			if passphrase != "" {
				fmt.Fprintf(out, "    passphrase  = env(%q)\n", passphraseEnv)
			}
			fmt.Fprintf(out, "  }\n\nA machine that only restores needs the public key alone.\n")
			return nil
		},
	}
	cmd.Flags().StringVar(&public, "public", "", tr.T("where to write the public key (default: PRIVATE_KEY_FILE with .pub)"))
	cmd.Flags().StringVar(&passphraseEnv, "passphrase-env", "", tr.T("encrypt the private key with the passphrase in this environment variable"))
	return cmd
}

// writeNew writes a file that must not exist yet, durably.
func writeNew(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if errors.Is(err, os.ErrExist) {
		return fmt.Errorf("%s exists: a key is never overwritten (remove it first if you mean to replace it)", path)
	}
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	return f.Close()
}

// skipSignatureFlag adds --insecure-skip-signature to a command that checks
// sets.
func skipSignatureFlag(cmd *cobra.Command, into *bool) {
	cmd.Flags().BoolVar(into, "insecure-skip-signature", false, tr.T("accept a set that is unsigned or whose signature does not verify with the pipeline's public key"))
}

// warnSkipSignature says that signatures go unchecked.
func warnSkipSignature(p *config.Pipeline, skip bool) {
	if skip && p.Signing != nil {
		fmt.Fprintf(os.Stderr, "mbk: warning: --insecure-skip-signature: the signatures of pipeline %q's sets are not checked\n", p.Name)
	}
}
