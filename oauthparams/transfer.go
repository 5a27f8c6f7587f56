package oauthparams

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"filippo.io/age"
	"filippo.io/age/armor"
)

// Export file format (see docs/parameter-sets.md).
const (
	exportFormat        = "mailwright-paramsets"
	exportVersion       = 1
	maxImportSize       = 10 << 20 // bytes
	maxImportProblems   = 100      // problems listed before "... and N more"
	maxImportScryptLogN = 20       // refuse files whose scrypt work factor would use > 1 GiB
	importedNoSecrets   = "imported without secrets: click Get Refresh Token"
)

// ExportOptions configure Store.Export.
type ExportOptions struct {
	// Names are the sets to export (case-insensitively); empty exports all of them.
	Names []string
	// WithSecrets adds the client secrets and tokens, encrypted with Passphrase.
	WithSecrets bool
	// Passphrase encrypts the secrets (age scrypt); required with WithSecrets.
	Passphrase string
}

// exportFile is the JSON document Export writes and Import reads.
type exportFile struct {
	Format     string     `json:"format"`
	Version    int        `json:"version"`
	ExportedAt time.Time  `json:"exported_at"`
	Sets       []ParamSet `json:"sets"`
	Secrets    string     `json:"secrets,omitempty"` // age armored scrypt ciphertext of {name: secrets}
}

// Export returns the chosen sets (all when opts.Names is empty) as a versioned JSON
// document, sorted by name. Without opts.WithSecrets it holds no secret at all; with it,
// the secrets of every set that has any are encrypted with opts.Passphrase (age scrypt)
// into the "secrets" field. Unknown names are an error (wrapping ErrNotFound) listing
// them all. Apart from exported_at and the ciphertext the output is deterministic.
func (s *Store) Export(opts ExportOptions) ([]byte, error) {
	if opts.WithSecrets && opts.Passphrase == "" {
		return nil, errors.New("params export: exporting secrets needs a passphrase to encrypt them")
	}
	out := exportFile{Format: exportFormat, Version: exportVersion,
		ExportedAt: time.Now().UTC().Truncate(time.Second), Sets: []ParamSet{}}
	secrets := map[string]secretsWire{}
	err := s.withLock(false, func() error {
		doc, err := s.readDoc()
		if err != nil {
			return err
		}
		chosen := make([]int, 0, len(doc.Sets))
		var unknown []string
		if len(opts.Names) == 0 {
			for i := range doc.Sets {
				chosen = append(chosen, i)
			}
		}
		for _, n := range opts.Names {
			if i := doc.find(n); i < 0 {
				unknown = append(unknown, fmt.Sprintf("%q", NormalizeName(n)))
			} else if !slices.Contains(chosen, i) {
				chosen = append(chosen, i)
			}
		}
		if len(unknown) > 0 {
			return fmt.Errorf("params export: %s: %w", strings.Join(unknown, ", "), ErrNotFound)
		}
		slices.SortStableFunc(chosen, func(a, b int) int {
			if c := strings.Compare(NameKey(doc.Sets[a].Name), NameKey(doc.Sets[b].Name)); c != 0 {
				return c
			}
			return strings.Compare(doc.Sets[a].Name, doc.Sets[b].Name)
		})
		var b SecretBackend
		for _, i := range chosen {
			st := doc.Sets[i]
			out.Sets = append(out.Sets, st.ParamSet)
			if !opts.WithSecrets || st.ID == "" {
				continue
			}
			if b == nil {
				if b, err = s.backendFor(doc.Secrets); err != nil {
					return err
				}
			}
			sec, ok, err := b.Get(st.ID)
			if err != nil {
				return err
			}
			if ok && !secretsZero(sec) {
				secrets[st.Name] = toWire(sec)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if opts.WithSecrets {
		if out.Secrets, err = s.encryptExport(secrets, opts.Passphrase); err != nil {
			return nil, err
		}
	}
	data, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("params export: encode: %w", err)
	}
	return append(data, '\n'), nil
}

// encryptExport encrypts m as JSON with passphrase (age scrypt, armored).
func (s *Store) encryptExport(m map[string]secretsWire, passphrase string) (string, error) {
	plain, err := json.Marshal(m)
	if err != nil {
		return "", errors.New("params export: encode secrets: unexpected JSON error")
	}
	r, err := age.NewScryptRecipient(passphrase)
	if err != nil {
		return "", fmt.Errorf("params export: %w", err)
	}
	if s.deps.scryptLogN != 0 {
		r.SetWorkFactor(s.deps.scryptLogN)
	}
	var buf bytes.Buffer
	aw := armor.NewWriter(&buf)
	w, err := age.Encrypt(aw, r)
	if err == nil {
		_, err = w.Write(plain)
	}
	if err == nil {
		err = w.Close()
	}
	if err == nil {
		err = aw.Close()
	}
	if err != nil {
		return "", fmt.Errorf("params export: encrypt secrets: %w", err)
	}
	return buf.String(), nil
}

// Conflict says what Import does with a set whose name (case-insensitively) is already
// taken in the store.
type Conflict string

// The conflict rules of ImportOptions.OnConflict.
const (
	ConflictFail      Conflict = "fail"      // the default: import nothing, list the conflicts
	ConflictSkip      Conflict = "skip"      // keep the stored set, ignore the imported one
	ConflictOverwrite Conflict = "overwrite" // replace the stored set (and its secrets)
	ConflictRename    Conflict = "rename"    // import as "Name (2)", "Name (3)", ...
)

// ImportOptions configure Store.PlanImport and Store.Import.
type ImportOptions struct {
	// OnConflict is the rule for names already taken; "" means ConflictFail.
	OnConflict Conflict
	// Passphrase decrypts the secrets of a file exported with them; required then.
	Passphrase string
}

// ImportPlan says what an import does (or did), set by set in file order.
type ImportPlan struct {
	Items []ImportItem
}

// ImportItem is what happens to one set of the file.
type ImportItem struct {
	// Name is the set's name in the file; FinalName its name in the store ("" for skip).
	Name, FinalName string
	// Action is "add", "replace", "rename" (added under FinalName) or "skip".
	Action string
	// WithSecrets reports whether the file carries secrets for the set.
	WithSecrets bool
}

// ImportError lists every problem found in an import file (or every name conflict), each
// with its position: "sets[3].token_url: ...", "line 4, column 7: ...". It unwraps to
// ErrExists when the problems are name conflicts. Problems never hold a secret value.
type ImportError struct {
	Problems []string
	conflict bool
}

// Error renders the problems one per line, at most 100 of them.
func (e *ImportError) Error() string {
	ps := e.Problems
	more := ""
	if len(ps) > maxImportProblems {
		more = fmt.Sprintf("\n... and %d more problems", len(ps)-maxImportProblems)
		ps = ps[:maxImportProblems]
	}
	return "params import: the file was not imported:\n" + strings.Join(ps, "\n") + more
}

// Unwrap returns ErrExists for name conflicts, else nil.
func (e *ImportError) Unwrap() error {
	if e.conflict {
		return ErrExists
	}
	return nil
}

// PlanImport reads and checks the whole file (and decrypts its secrets) and says what
// Import would do with the store as it is now. It changes nothing.
func (s *Store) PlanImport(data []byte, opts ImportOptions) (ImportPlan, error) {
	in, err := parseImport(data, opts)
	if err != nil {
		return ImportPlan{}, err
	}
	var plan ImportPlan
	err = s.withLock(false, func() error {
		doc, err := s.readDoc()
		if err != nil {
			return err
		}
		plan, err = planImport(&doc, in, opts.OnConflict)
		return err
	})
	return plan, err
}

// Import checks the whole file first and imports nothing if any part is invalid, or if
// a name conflicts under ConflictFail. It then applies the plan under the store's lock:
// paramsets.json is written once, and if saving a secret or the file fails, the secrets
// already changed are restored. Sets imported from a file without secrets are marked
// sign-in needed; with secrets they keep their tokens.
func (s *Store) Import(data []byte, opts ImportOptions) (ImportPlan, error) {
	in, err := parseImport(data, opts)
	if err != nil {
		return ImportPlan{}, err
	}
	// The backend is needed only to store secrets or to replace a set's stored ones, so
	// that a file without secrets can be imported while the keyring is unreachable.
	needSecrets := len(in.hasSecrets) > 0 || opts.OnConflict == ConflictOverwrite
	var plan ImportPlan
	err = s.mutate(needSecrets, func(doc *fileDoc, b SecretBackend) (func(), error) {
		if plan, err = planImport(doc, in, opts.OnConflict); err != nil {
			return nil, err
		}
		var undos []func()
		undo := func() {
			for _, u := range slices.Backward(undos) {
				u()
			}
		}
		if !slices.ContainsFunc(plan.Items, func(it ImportItem) bool { return it.Action != "skip" }) {
			return nil, errUnchanged // nothing to import: write nothing
		}
		for k, it := range plan.Items {
			p := in.sets[k].Clone()
			var sec Secrets
			p.Secrets, sec = Secrets{}, in.sets[k].Secrets
			switch it.Action {
			case "skip":
				continue
			case "add", "rename":
				p.Name = it.FinalName
				id := newID()
				if !secretsZero(sec) {
					if err := b.Set(id, sec); err != nil {
						undo()
						return nil, err
					}
					undos = append(undos, func() { _ = b.Delete(id) })
				}
				doc.Sets = append(doc.Sets, storedSet{ID: id, ParamSet: p})
			case "replace":
				i := doc.find(it.Name)
				id := doc.Sets[i].ID
				if id == "" {
					id = newID()
				}
				old, _, err := b.Get(id)
				if err == nil {
					err = s.putSecrets(b, id, sec, false)
				}
				if err != nil {
					undo()
					return nil, err
				}
				undos = append(undos, func() { _ = s.putSecrets(b, id, old, false) })
				p.Name = it.FinalName
				doc.Sets[i] = storedSet{ID: id, ParamSet: p}
			}
		}
		return undo, nil
	})
	if err != nil {
		return ImportPlan{}, err
	}
	return plan, nil
}

// planImport decides the action for each set of in against doc.
func planImport(doc *fileDoc, in *importData, rule Conflict) (ImportPlan, error) {
	if rule == "" {
		rule = ConflictFail
	}
	taken := map[string]bool{}
	for _, st := range doc.Sets {
		taken[NameKey(st.Name)] = true
	}
	inFile := map[string]bool{}
	for _, p := range in.sets {
		inFile[NameKey(p.Name)] = true
	}
	var plan ImportPlan
	var conflicts []string
	for k, p := range in.sets {
		it := ImportItem{Name: p.Name, FinalName: p.Name, Action: "add", WithSecrets: in.hasSecrets[NameKey(p.Name)]}
		if doc.find(p.Name) >= 0 {
			switch rule {
			case ConflictFail:
				conflicts = append(conflicts, fmt.Sprintf("sets[%d].name: %q already exists (choose skip, overwrite or rename for conflicts)", k, p.Name))
			case ConflictSkip:
				it.Action, it.FinalName = "skip", ""
			case ConflictOverwrite:
				it.Action = "replace"
			case ConflictRename:
				it.Action, it.FinalName = "rename", freeName(p.Name, taken, inFile)
			}
		}
		if it.FinalName != "" {
			taken[NameKey(it.FinalName)] = true
		}
		plan.Items = append(plan.Items, it)
	}
	if len(conflicts) > 0 {
		return ImportPlan{}, &ImportError{Problems: conflicts, conflict: true}
	}
	return plan, nil
}

// freeName returns "name (n)" for the smallest n ≥ 2 not taken nor used in the file,
// shortening name if needed to stay within MaxNameLength.
func freeName(name string, taken, inFile map[string]bool) string {
	for n := 2; ; n++ {
		suffix := fmt.Sprintf(" (%d)", n)
		base := []rune(name)
		if room := MaxNameLength - len(suffix); len(base) > room {
			base = base[:room]
		}
		c := strings.TrimSpace(string(base)) + suffix
		if !taken[NameKey(c)] && !inFile[NameKey(c)] {
			return c
		}
	}
}
