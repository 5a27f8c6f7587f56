package actions

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
)

// pop3SeenKey is the state key of the UIDLs a POP3 Mail Loop with "only new" has handled.
//
// Its value is JSON {"v":1,"gen":<n>,"uidls":[...]}: the handled UIDLs that were still on
// the server when the last run began. During a run, each committed UIDL is added to a
// journal part "pop3.seen.<k>" (k = 1, 2, …, at most pop3SeenPart UIDLs each) holding
// {"v":1,"gen":<n>,"uidls":[...]}, so that each commit stores a small value rather than
// the whole set (which would make a first run over 10,000 messages write gigabytes). A
// part belongs to the set only if its gen equals the main value's; reading stops at the
// first part that is missing or of another gen. Each run folds the parts into the main
// value under a new gen, pruned to the UIDLs on the server.
//
// Both kinds of value may also hold "dele":[...]: handled UIDLs whose deletion the loop's
// body asked for (POP3 Delete Email on the loop's message) and which may still be on the
// server, because POP3 commits DELE only at QUIT. Commit writes a message's UIDL into
// "uidls" and "dele" in one part BEFORE it sends DELE, so a session that ends without QUIT
// (cut, killed) leaves a record of the deletions it lost: the next run on the same
// account and server sends DELE for them again (pop3_lostdele.go). After a successful
// QUIT the UIDLs deleted in the session are removed from "dele" (pop3SeenDeleted).
const pop3SeenKey = "pop3.seen"

// pop3SeenPart is the number of UIDLs per journal part.
const pop3SeenPart = 100

type pop3SeenValue struct {
	V     int      `json:"v"`
	Gen   int64    `json:"gen"`
	UIDLs []string `json:"uidls"`
	Dele  []string `json:"dele,omitempty"` // of UIDLs: deletion asked for, not known to be committed
}

// pop3Seen is the set of handled UIDLs of one loop step.
type pop3Seen struct {
	st        StateStore
	gen       int64
	set       map[string]bool
	dele      map[string]bool // handled UIDLs whose deletion may have been lost (a subset of set)
	part      int             // journal part being written
	batch     []string        // its UIDLs
	deleBatch []string        // its UIDLs pending deletion
}

// loadPOP3Seen reads the set from st.
func loadPOP3Seen(st StateStore) (*pop3Seen, error) {
	s := &pop3Seen{st: st, set: map[string]bool{}, dele: map[string]bool{}}
	base, ok, err := s.load(pop3SeenKey)
	if err != nil || !ok {
		return s, err
	}
	s.gen = base.Gen
	s.addAll(base)
	for k := 1; ; k++ {
		part, ok, err := s.load(pop3SeenPartKey(k))
		if err != nil {
			return nil, err
		}
		if !ok || part.Gen != s.gen {
			return s, nil
		}
		s.addAll(part)
	}
}

func pop3SeenPartKey(k int) string { return pop3SeenKey + "." + strconv.Itoa(k) }

func (s *pop3Seen) load(key string) (pop3SeenValue, bool, error) {
	raw, ok, err := s.st.Load(key)
	if err != nil {
		return pop3SeenValue{}, false, fmt.Errorf("read the POP3 Mail Loop's record of handled messages (%s): %w", key, err)
	}
	if !ok || raw == "" {
		return pop3SeenValue{}, false, nil
	}
	var v pop3SeenValue
	if err := json.Unmarshal([]byte(raw), &v); err != nil || v.V != 1 {
		return pop3SeenValue{}, false, fmt.Errorf("the POP3 Mail Loop's record of handled messages (%s) is damaged or of a newer version; turn \"Only new messages\" off for one run, or reset the task's state, to start over", key)
	}
	return v, true, nil
}

func (s *pop3Seen) addAll(v pop3SeenValue) {
	for _, u := range v.UIDLs {
		s.set[u] = true
	}
	for _, u := range v.Dele {
		s.dele[u] = true
	}
}

// Has reports whether uidl was handled.
func (s *pop3Seen) Has(uidl string) bool { return s.set[uidl] }

// PendingDelete reports whether uidl was handled and its deletion may have been lost.
func (s *pop3Seen) PendingDelete(uidl string) bool { return s.dele[uidl] }

// pendingCount returns the number of UIDLs pending deletion.
func (s *pop3Seen) pendingCount() int { return len(s.dele) }

// begin starts a run: it forgets the UIDLs no longer on the server (handled, or pending
// deletion: those were deleted after all) and stores the set under a new generation.
func (s *pop3Seen) begin(onServer map[string]bool) error {
	for u := range s.set {
		if !onServer[u] {
			delete(s.set, u)
		}
	}
	return s.compact()
}

// compact stores the whole set as the main value under a new generation, which makes the
// journal parts obsolete.
func (s *pop3Seen) compact() error {
	list := make([]string, 0, len(s.set))
	for u := range s.set {
		list = append(list, u)
	}
	var dele []string
	for u := range s.dele {
		if s.set[u] {
			dele = append(dele, u)
		} else {
			delete(s.dele, u)
		}
	}
	sort.Strings(list)
	sort.Strings(dele)
	s.gen++
	s.part, s.batch, s.deleBatch = 1, nil, nil
	return s.store(pop3SeenKey, list, dele)
}

// Add records uidl as handled, durably; with dele, also that its deletion was asked for
// (in the same write: both or neither are recorded).
func (s *pop3Seen) Add(uidl string, dele bool) error {
	if s.set[uidl] && (!dele || s.dele[uidl]) {
		return nil
	}
	if len(s.batch) >= pop3SeenPart {
		s.part, s.batch, s.deleBatch = s.part+1, nil, nil
	}
	s.batch = append(s.batch, uidl)
	if dele {
		s.deleBatch = append(s.deleBatch, uidl)
	}
	if err := s.store(pop3SeenPartKey(s.part), s.batch, s.deleBatch); err != nil {
		s.batch = s.batch[:len(s.batch)-1]
		if dele {
			s.deleBatch = s.deleBatch[:len(s.deleBatch)-1]
		}
		return err
	}
	s.set[uidl] = true
	if dele {
		s.dele[uidl] = true
	}
	return nil
}

// pop3SeenDeleted removes uidls from the record of pending deletions in st, after a QUIT
// that committed their deletion. The handled set stays (the next run prunes it to what is
// on the server), so a server that keeps listing a deleted message does not make the
// loop handle it again.
func pop3SeenDeleted(st StateStore, uidls []string) error {
	s, err := loadPOP3Seen(st)
	if err != nil {
		return err
	}
	changed := false
	for _, u := range uidls {
		if s.dele[u] {
			delete(s.dele, u)
			changed = true
		}
	}
	if !changed {
		return nil
	}
	return s.compact()
}

func (s *pop3Seen) store(key string, uidls, dele []string) error {
	if uidls == nil {
		uidls = []string{}
	}
	b, err := json.Marshal(pop3SeenValue{V: 1, Gen: s.gen, UIDLs: uidls, Dele: dele})
	if err != nil {
		return err
	}
	if err := s.st.Store(key, string(b)); err != nil {
		return fmt.Errorf("save the POP3 Mail Loop's record of handled messages: %w", err)
	}
	return nil
}
