package oauthparams

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

// FuzzImport feeds arbitrary files to Import with each conflict rule. It must never
// panic; a failed import must leave paramsets.json byte for byte as it was; a successful
// one must leave only valid, uniquely named sets. The store is reused (reset after each
// success) to keep iterations fast, and no passphrase is given, so files with secrets
// fail before any slow decryption.
func FuzzImport(f *testing.F) {
	f.Add([]byte(trValidFile), uint8(0))
	f.Add([]byte(trValidFile), uint8(3))
	f.Add([]byte(strings.Replace(trValidFile, `"name": "Two"`, `"name": "Existing"`, 1)), uint8(2))
	f.Add([]byte(strings.Replace(trValidFile, `"version": 1`, `"version": 2`, 1)), uint8(1))
	f.Add([]byte(strings.Replace(trValidFile, `"client_id": "id2"`, `"client_id": 2`, 1)), uint8(0))
	f.Add([]byte(strings.Replace(trValidFile, `"name": "Two"`, `"name": "one"`, 1)), uint8(3))
	f.Add([]byte(trValidFile[:150]), uint8(0))
	f.Add([]byte(trValidFile+"x"), uint8(1))
	f.Add([]byte(`{"format":"mailwright-paramsets","version":1,"sets":[null,"x",{}],"secrets":"-----BEGIN AGE ENCRYPTED FILE-----"}`), uint8(2))
	f.Add([]byte(`{"format":"mailwright-paramsets","version":1,"sets":[]}`), uint8(0))
	f.Add([]byte(`[]`), uint8(0))

	s := openFile(f, f.TempDir(), "")
	existing := sampleSet("Existing")
	existing.Secrets = Secrets{} // no secrets: nothing slow or stateful outside paramsets.json
	mustPut(f, s, existing)
	snapshot, err := os.ReadFile(s.path)
	if err != nil {
		f.Fatal(err)
	}
	rules := []Conflict{ConflictFail, ConflictSkip, ConflictOverwrite, ConflictRename}

	f.Fuzz(func(t *testing.T, data []byte, rule uint8) {
		plan, err := s.Import(data, ImportOptions{OnConflict: rules[int(rule)%len(rules)]})
		now, rerr := os.ReadFile(s.path)
		if rerr != nil {
			t.Fatal(rerr)
		}
		if err != nil {
			if !bytes.Equal(now, snapshot) {
				t.Fatalf("a failed import changed paramsets.json: %v", err)
			}
			return
		}
		defer func() {
			if err := WriteFileAtomic(s.path, snapshot, 0o600); err != nil {
				t.Fatal(err)
			}
		}()
		list, err := s.List()
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, p := range list {
			if seen[NameKey(p.Name)] {
				t.Fatalf("two sets named %q", p.Name)
			}
			seen[NameKey(p.Name)] = true
			if p.Name != "Existing" {
				if err := p.Validate(); err != nil {
					t.Fatalf("imported an invalid set %q: %v", p.Name, err)
				}
			}
		}
		for _, it := range plan.Items {
			if it.FinalName != "" && !seen[NameKey(it.FinalName)] {
				t.Fatalf("planned %q is not in the store", it.FinalName)
			}
		}
	})
}
