package actions

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Collision policies for files that already exist.
const (
	CollisionRename    = "rename"    // save as "name (2).ext", "name (3).ext", …
	CollisionOverwrite = "overwrite" // replace the existing file (atomically)
	CollisionSkip      = "skip"      // keep the existing file, save nothing
	CollisionFail      = "fail"      // stop with an error
)

// CollisionChoices are the values of a "collision" parameter.
var collisionChoices = []string{CollisionRename, CollisionOverwrite, CollisionSkip, CollisionFail}

// CollisionParam is the "if the file exists" parameter shared by steps that save files.
func CollisionParam() Param {
	return Param{Name: "collision", Label: "If the file exists", Kind: KindEnum, Default: CollisionRename, Choices: append([]string(nil), collisionChoices...),
		Help: "rename: add (2), (3)… to the name; overwrite: replace it; skip: keep it and save nothing; fail: stop with an error."}
}

// maxFileNameBytes keeps names within common file-system limits (255 bytes), with room
// for a " (123)" collision suffix.
const maxFileNameBytes = 200

// SanitizeFileName makes name safe as one file name in a folder: path separators, "..",
// control characters and characters Windows forbids become "_"; leading dots and trailing
// dots and spaces go; overly long names are shortened (keeping the extension). An empty
// result becomes fallback.
func SanitizeFileName(name, fallback string) string {
	var b strings.Builder
	for _, r := range name {
		switch {
		case r == utf8.RuneError, unicode.IsControl(r), strings.ContainsRune(`/\:*?"<>|`, r), saveBidiControl(r):
			b.WriteByte('_')
		default:
			b.WriteRune(r)
		}
	}
	s := strings.TrimSpace(b.String())
	for strings.Contains(s, "..") {
		s = strings.ReplaceAll(s, "..", "_")
	}
	s = strings.TrimLeft(s, ".")
	s = strings.TrimRight(s, ". ")
	if len(s) > maxFileNameBytes {
		ext := filepath.Ext(s)
		if len(ext) > 20 || !utf8.ValidString(ext) {
			ext = ""
		}
		base := s[:maxFileNameBytes-len(ext)]
		for !utf8.ValidString(base) {
			base = base[:len(base)-1]
		}
		s = strings.TrimRight(base, ". ") + ext
	}
	if saveReservedName(s) {
		s = "_" + s
	}
	if s == "" {
		return fallback
	}
	return s
}

// saveReservedName reports whether Windows reserves name for a device: CON, PRN, AUX, NUL,
// COM0-9 and LPT0-9 (also with ¹²³), in any case, whatever follows the first dot
// ("con.tar.gz") and with trailing spaces.
func saveReservedName(name string) bool {
	base, _, _ := strings.Cut(name, ".")
	base = strings.ToUpper(strings.TrimRight(base, " "))
	switch base {
	case "CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$":
		return true
	}
	if rs := []rune(base); len(rs) == 4 && (strings.HasPrefix(base, "COM") || strings.HasPrefix(base, "LPT")) {
		return rs[3] >= '0' && rs[3] <= '9' || rs[3] == '¹' || rs[3] == '²' || rs[3] == '³'
	}
	return false
}

// saveBidiControl reports whether r changes the direction of the text around it (U+202A
// to U+202E, U+2066 to U+2069, U+200E, U+200F, U+061C): in a file name they make
// "invoice<U+202E>fdp.exe" look like "invoiceexe.pdf".
func saveBidiControl(r rune) bool {
	return r >= 0x202A && r <= 0x202E || r >= 0x2066 && r <= 0x2069 || r == 0x200E || r == 0x200F || r == 0x061C
}

// SavedFile is the result of SaveStream.
type SavedFile struct {
	Path    string // the file written (or, when skipped, the existing one)
	Size    int64  // bytes written
	Skipped bool   // the collision policy was skip and the file existed
}

// SaveStream copies r into folder/name durably: it writes a temporary file in folder,
// fsyncs it, renames it into place and fsyncs the folder, so that once it returns the file
// survives a crash, and a failure leaves no partial file behind. name must already be
// sanitized (SanitizeFileName). The folder is created if missing. ctx cancels the copy.
func SaveStream(ctx context.Context, folder, name, collision string, r io.Reader) (SavedFile, error) {
	if folder == "" {
		folder = "."
	}
	if err := os.MkdirAll(folder, 0o755); err != nil {
		return SavedFile{}, fmt.Errorf("create folder %s: %w", folder, err)
	}
	tmp, err := os.CreateTemp(folder, ".mailwright-*.part")
	if err != nil {
		return SavedFile{}, fmt.Errorf("save into %s: %w", folder, err)
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	n, err := io.Copy(tmp, ctxReader{ctx, r})
	if err != nil {
		return SavedFile{}, fmt.Errorf("save %s: %w", filepath.Join(folder, name), err)
	}
	if err := tmp.Sync(); err != nil {
		return SavedFile{}, fmt.Errorf("save %s: sync: %w", filepath.Join(folder, name), err)
	}
	if err := tmp.Close(); err != nil {
		return SavedFile{}, fmt.Errorf("save %s: %w", filepath.Join(folder, name), err)
	}
	dest, skipped, err := placeFile(tmp.Name(), folder, name, collision)
	if err != nil {
		return SavedFile{}, err
	}
	if skipped {
		os.Remove(tmp.Name())
		ok = true
		return SavedFile{Path: dest, Skipped: true}, nil
	}
	ok = true
	if err := syncDir(folder); err != nil {
		return SavedFile{}, fmt.Errorf("save %s: sync folder: %w", dest, err)
	}
	return SavedFile{Path: dest, Size: n}, nil
}

// placeFile moves tmp to folder/name following the collision policy. Rename uses a hard
// link so that an existing file is never replaced by a race.
func placeFile(tmp, folder, name, collision string) (dest string, skipped bool, err error) {
	dest = filepath.Join(folder, name)
	switch collision {
	case CollisionOverwrite:
		if err := os.Rename(tmp, dest); err != nil {
			return "", false, fmt.Errorf("save %s: %w", dest, err)
		}
		return dest, false, nil
	case CollisionSkip, CollisionFail, "":
		err := os.Link(tmp, dest)
		if err == nil {
			os.Remove(tmp)
			return dest, false, nil
		}
		if !errors.Is(err, os.ErrExist) {
			return "", false, fmt.Errorf("save %s: %w", dest, err)
		}
		if collision == CollisionSkip {
			return dest, true, nil
		}
		return "", false, fmt.Errorf("save %s: the file already exists (choose rename, overwrite or skip under \"If the file exists\")", dest)
	default: // rename
		ext := filepath.Ext(name)
		base := strings.TrimSuffix(name, ext)
		for i := 1; i < 10000; i++ {
			cand := name
			if i > 1 {
				cand = base + " (" + strconv.Itoa(i) + ")" + ext
			}
			dest = filepath.Join(folder, cand)
			err := os.Link(tmp, dest)
			if err == nil {
				os.Remove(tmp)
				return dest, false, nil
			}
			if !errors.Is(err, os.ErrExist) {
				return "", false, fmt.Errorf("save %s: %w", dest, err)
			}
		}
		return "", false, fmt.Errorf("save %s: 10,000 files of that name exist already", filepath.Join(folder, name))
	}
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// ctxReader stops a copy when ctx is cancelled.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
