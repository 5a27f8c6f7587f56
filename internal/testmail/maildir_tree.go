package testmail

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf16"
)

// folderDir maps a user and an IMAP folder name to the folder's Maildir++ directory:
// INBOX is <home>/Maildir, "A/B" is <home>/Maildir/.A.B, names in modified UTF-7.
func (d *Dovecot) folderDir(user, folder string) (string, error) {
	if err := validUserName(user); err != nil {
		return "", err
	}
	maildir := filepath.Join(d.mailRoot, strings.ToLower(user), "Maildir")
	parts := strings.Split(folder, "/")
	if strings.EqualFold(parts[0], "INBOX") {
		parts[0] = "INBOX"
	}
	if len(parts) == 1 && parts[0] == "INBOX" {
		return maildir, nil
	}
	for i, p := range parts {
		if p == "" || strings.ContainsAny(p, ".~") || strings.ContainsFunc(p, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			return "", fmt.Errorf("folder %q: empty names and names with '.', '~' or control characters are not supported on Maildir++", folder)
		}
		parts[i] = encodeMUTF7(p)
	}
	return filepath.Join(maildir, "."+strings.Join(parts, ".")), nil
}

// encodeMUTF7 encodes a mailbox name in IMAP's modified UTF-7 (RFC 3501 5.1.3), as
// Dovecot names Maildir++ folders on disk.
func encodeMUTF7(s string) string {
	var b strings.Builder
	var run []rune
	flush := func() {
		if len(run) == 0 {
			return
		}
		units := utf16.Encode(run)
		raw := make([]byte, 0, 2*len(units))
		for _, u := range units {
			raw = binary.BigEndian.AppendUint16(raw, u)
		}
		b.WriteString("&" + strings.ReplaceAll(base64.RawStdEncoding.EncodeToString(raw), "/", ",") + "-")
		run = run[:0]
	}
	for _, r := range s {
		switch {
		case r == '&':
			flush()
			b.WriteString("&-")
		case r >= 0x20 && r <= 0x7e:
			flush()
			b.WriteRune(r)
		default:
			run = append(run, r)
		}
	}
	flush()
	return b.String()
}

// makeMailTree creates the mail root and every user's INBOX before Dovecot starts.
func (d *Dovecot) makeMailTree() error {
	if err := d.mkdirOwned(d.mailRoot); err != nil {
		return err
	}
	for _, u := range d.Users {
		dir, err := d.folderDir(u.Name, "INBOX")
		if err != nil {
			return err
		}
		if err := d.makeMaildir(dir); err != nil {
			return err
		}
	}
	return nil
}

// makeMaildir creates dir with cur/, new/ and tmp/ (and every missing parent below the
// mail root), owned by the mail user.
func (d *Dovecot) makeMaildir(dir string) error {
	rel, err := filepath.Rel(d.mailRoot, dir)
	if err != nil || strings.HasPrefix(rel, "..") {
		return fmt.Errorf("maildir %s is outside the mail root %s", dir, d.mailRoot)
	}
	path := d.mailRoot
	for _, part := range append(strings.Split(rel, string(filepath.Separator)), "cur") {
		path = filepath.Join(path, part)
		if err := d.mkdirOwned(path); err != nil {
			return err
		}
	}
	for _, sub := range []string{"new", "tmp"} {
		if err := d.mkdirOwned(filepath.Join(dir, sub)); err != nil {
			return err
		}
	}
	if filepath.Base(dir) != "Maildir" {
		marker := filepath.Join(dir, "maildirfolder")
		if _, err := os.Stat(marker); errors.Is(err, fs.ErrNotExist) {
			return d.writeOwned(marker, nil)
		}
	}
	return nil
}

// mkdirOwned creates one directory (mode 0700) unless it exists, owned by the mail user.
func (d *Dovecot) mkdirOwned(path string) error {
	err := os.Mkdir(path, 0o700)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("make mail directory: %w", err)
	}
	if d.id.Chown {
		if err := os.Chown(path, d.id.UID, d.id.GID); err != nil {
			return fmt.Errorf("give %s to the mail user: %w", path, err)
		}
	}
	return nil
}
