package oauthparams

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"filippo.io/age"
	"filippo.io/age/armor"
)

// importData is a checked import file: normalized sets (with their secrets) in file order.
type importData struct {
	sets       []ParamSet
	hasSecrets map[string]bool // by NameKey
}

// parseImport reads and checks data completely, reporting every problem at once.
func parseImport(data []byte, opts ImportOptions) (*importData, error) {
	switch opts.OnConflict {
	case "", ConflictFail, ConflictSkip, ConflictOverwrite, ConflictRename:
	default:
		return nil, fmt.Errorf("params import: unknown conflict rule %q (want fail, skip, overwrite or rename)", opts.OnConflict)
	}
	if len(data) > maxImportSize {
		return nil, fmt.Errorf("params import: the file is %d bytes; the limit is %d (10 MiB)", len(data), maxImportSize)
	}
	fail := func(ps ...string) (*importData, error) {
		for i, p := range ps { // names and keys come from the file: no terminal escapes
			ps[i] = strings.Map(func(r rune) rune {
				if unicode.IsControl(r) {
					return '?'
				}
				return r
			}, p)
		}
		return nil, &ImportError{Problems: ps}
	}
	var top struct {
		Format  *string           `json:"format"`
		Version *int              `json:"version"`
		Sets    []json.RawMessage `json:"sets"`
		Secrets *string           `json:"secrets"`
	}
	if err := json.Unmarshal(data, &top); err != nil {
		return fail(jsonProblem("", data, 0, err))
	}
	switch {
	case top.Format == nil:
		return fail(`format: missing: this is not a Mailwright parameter-set export`)
	case *top.Format != exportFormat:
		return fail(fmt.Sprintf("format: %q is not %q: this is not a Mailwright parameter-set export", *top.Format, exportFormat))
	case top.Version == nil || *top.Version < 1:
		return fail("version: missing or not a positive number")
	case *top.Version > exportVersion:
		return fail(fmt.Sprintf("version: %d: the file was made by a newer Mailwright (this one reads version %d): update Mailwright", *top.Version, exportVersion))
	case top.Sets == nil:
		return fail("sets: missing")
	}
	starts := elementStarts(data)
	in := &importData{hasSecrets: map[string]bool{}}
	var probs []string
	firstAt := map[string]int{}
	for k, raw := range top.Sets {
		pos := fmt.Sprintf("sets[%d]", k)
		base := -1 // positions only for the first problems: each costs a scan of the file
		if k < len(starts) && len(probs) < maxImportProblems {
			base = starts[k]
		}
		var p ParamSet
		if err := json.Unmarshal(raw, &p); err != nil {
			probs = append(probs, jsonProblem(pos, data, base, err))
			continue
		}
		var plainSecrets struct {
			ClientSecret json.RawMessage `json:"client_secret"`
			RefreshToken json.RawMessage `json:"refresh_token"`
			AccessToken  json.RawMessage `json:"access_token"`
		}
		if json.Unmarshal(raw, &plainSecrets) == nil && (plainSecrets.ClientSecret != nil ||
			plainSecrets.RefreshToken != nil || plainSecrets.AccessToken != nil) {
			probs = append(probs, pos+": holds a secret in plain text: secrets may only be in the encrypted \"secrets\" field (export again with secrets)")
		}
		p.Normalize()
		if j, dup := firstAt[NameKey(p.Name)]; dup && p.Name != "" {
			probs = append(probs, fmt.Sprintf("%s.name: %q is also the name of sets[%d] (names compare case-insensitively)", pos, p.Name, j))
		} else {
			firstAt[NameKey(p.Name)] = k
		}
		probs = append(probs, validationProblems(pos, p)...)
		in.sets = append(in.sets, p)
	}
	hasSecrets := top.Secrets != nil && *top.Secrets != ""
	if hasSecrets && opts.Passphrase == "" {
		probs = append(probs, "secrets: this file holds encrypted secrets: give the passphrase (--passphrase-file)")
	}
	if len(probs) > 0 {
		return fail(probs...)
	}
	if !hasSecrets {
		for k := range in.sets {
			in.sets[k].MarkSignInNeeded(importedNoSecrets)
		}
		return in, nil
	}
	m, err := decryptImport(*top.Secrets, opts.Passphrase)
	if err != nil {
		return nil, err
	}
	for name, w := range m {
		k, ok := firstAt[NameKey(name)]
		if !ok || in.hasSecrets[NameKey(name)] {
			probs = append(probs, fmt.Sprintf("secrets: holds secrets for %q, which is not (or more than once) among the sets", name))
			continue
		}
		in.hasSecrets[NameKey(name)] = true
		in.sets[k].Secrets = w.secrets()
		in.sets[k].Normalize()
		probs = append(probs, validationProblems(fmt.Sprintf("sets[%d]", k), in.sets[k])...)
	}
	if len(probs) > 0 {
		slices.Sort(probs)
		return fail(probs...)
	}
	return in, nil
}

// validationProblems returns p's Validate problems prefixed with pos.
func validationProblems(pos string, p ParamSet) []string {
	var ve ValidationError
	if err := p.Validate(); errors.As(err, &ve) {
		out := make([]string, len(ve.Problems))
		for i, pr := range ve.Problems {
			out[i] = pos + "." + pr.Field + ": " + pr.Message
		}
		return out
	} else if err != nil {
		return []string{pos + ": " + err.Error()}
	}
	return nil
}

// decryptImport decrypts the "secrets" field: a JSON object name → secrets.
func decryptImport(armored, passphrase string) (map[string]secretsWire, error) {
	id, err := age.NewScryptIdentity(passphrase)
	if err != nil {
		return nil, fmt.Errorf("params import: %w", err)
	}
	id.SetMaxWorkFactor(maxImportScryptLogN)
	r, err := age.Decrypt(armor.NewReader(strings.NewReader(armored)), id)
	var plain []byte
	if err == nil {
		plain, err = io.ReadAll(io.LimitReader(r, maxImportSize))
	}
	if noMatch := (*age.NoIdentityMatchError)(nil); errors.As(err, &noMatch) {
		return nil, errors.New("params import: secrets: wrong passphrase (the secrets cannot be decrypted with it)")
	} else if err != nil {
		return nil, fmt.Errorf("params import: secrets: cannot be decrypted (damaged?): %v", err)
	}
	var m map[string]secretsWire
	if err := json.Unmarshal(plain, &m); err != nil {
		return nil, errors.New("params import: secrets: the decrypted content is not a JSON object of secrets (damaged?)")
	}
	return m, nil
}

// jsonProblem describes a JSON decoding error at its line and column. base is the offset
// in data of the value being decoded (0 for the whole file, -1 when unknown).
func jsonProblem(pos string, data []byte, base int, err error) string {
	prefix := pos
	if prefix != "" {
		prefix += ": "
	}
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se) && base >= 0:
		// Offset counts the offending byte: point at it.
		return prefix + lineCol(data, base+int(se.Offset)-1) + ": " + se.Error()
	case errors.As(err, &te):
		field := te.Field
		if pos != "" && field != "" {
			field = pos + "." + field
		} else if field == "" {
			field = pos
		}
		msg := fmt.Sprintf("want %s, got %s", jsonKind(te.Type), te.Value)
		if base >= 0 {
			msg = lineCol(data, base+int(te.Offset)) + ": " + msg
		}
		if field == "" {
			return msg
		}
		return field + ": " + msg
	}
	if base >= 0 {
		prefix += lineCol(data, base) + ": "
	}
	return prefix + err.Error()
}

// jsonKind names the JSON value a Go type takes.
func jsonKind(t reflect.Type) string {
	if t == nil {
		return "another value"
	}
	if t == reflect.TypeFor[time.Time]() {
		return "a time (RFC 3339 text)"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Int, reflect.Int64, reflect.Int32, reflect.Uint, reflect.Uint64, reflect.Float64:
		return "a number"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.Pointer:
		return jsonKind(t.Elem())
	}
	return "another value"
}

// lineCol renders a byte offset of data as "line L, column C" (1-based, C in characters).
func lineCol(data []byte, off int) string {
	off = min(max(off, 0), len(data))
	line := 1 + bytes.Count(data[:off], []byte("\n"))
	lineStart := bytes.LastIndexByte(data[:off], '\n') + 1
	return fmt.Sprintf("line %d, column %d", line, 1+utf8.RuneCount(data[lineStart:off]))
}

// elementStarts returns the byte offsets of the elements of the top-level "sets" array of
// data, which must be valid JSON (the last "sets" key counts, as for json.Unmarshal).
func elementStarts(data []byte) []int {
	dec := json.NewDecoder(bytes.NewReader(data))
	skip := func(off int) int {
		for off < len(data) && strings.IndexByte(" \t\r\n,:", data[off]) >= 0 {
			off++
		}
		return off
	}
	var starts []int
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil
	}
	for dec.More() {
		key, err := dec.Token()
		if err != nil {
			return starts
		}
		if k, _ := key.(string); !strings.EqualFold(k, "sets") {
			var skipped json.RawMessage
			if dec.Decode(&skipped) != nil {
				return starts
			}
			continue
		}
		if t, err := dec.Token(); err != nil || t != json.Delim('[') {
			return starts
		}
		starts = starts[:0]
		for dec.More() {
			starts = append(starts, skip(int(dec.InputOffset())))
			var skipped json.RawMessage
			if dec.Decode(&skipped) != nil {
				return starts
			}
		}
		if _, err := dec.Token(); err != nil {
			return starts
		}
	}
	return starts
}
