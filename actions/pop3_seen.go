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
const pop3SeenKey = "pop3.seen"

// pop3SeenPart is the number of UIDLs per journal part.
const pop3SeenPart = 100

type pop3SeenValue struct {
	V     int      `json:"v"`
	Gen   int64    `json:"gen"`
	UIDLs []string `json:"uidls"`
}

// pop3Seen is the set of handled UIDLs of one loop step.
type pop3Seen struct {
	st    StateStore
	gen   int64
	set   map[string]bool
	part  int      // journal part being written
	batch []string // its UIDLs
}

// loadPOP3Seen reads the set from st.
func loadPOP3Seen(st StateStore) (*pop3Seen, error) {
	s := &pop3Seen{st: st, set: map[string]bool{}}
	base, ok, err := s.load(pop3SeenKey)
	if err != nil || !ok {
		return s, err
	}
	s.gen = base.Gen
	s.addAll(base.UIDLs)
	for k := 1; ; k++ {
		part, ok, err := s.load(pop3SeenPartKey(k))
		if err != nil {
			return nil, err
		}
		if !ok || part.Gen != s.gen {
			return s, nil
		}
		s.addAll(part.UIDLs)
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

func (s *pop3Seen) addAll(uidls []string) {
	for _, u := range uidls {
		s.set[u] = true
	}
}

// Has reports whether uidl was handled.
func (s *pop3Seen) Has(uidl string) bool { return s.set[uidl] }

// begin starts a run: it forgets the UIDLs no longer on the server and stores the set
// under a new generation.
func (s *pop3Seen) begin(onServer map[string]bool) error {
	list := make([]string, 0, len(s.set))
	for u := range s.set {
		if onServer[u] {
			list = append(list, u)
		} else {
			delete(s.set, u)
		}
	}
	sort.Strings(list)
	s.gen++
	s.part, s.batch = 1, nil
	return s.store(pop3SeenKey, list)
}

// Add records uidl as handled, durably.
func (s *pop3Seen) Add(uidl string) error {
	if s.set[uidl] {
		return nil
	}
	if len(s.batch) >= pop3SeenPart {
		s.part, s.batch = s.part+1, nil
	}
	s.batch = append(s.batch, uidl)
	if err := s.store(pop3SeenPartKey(s.part), s.batch); err != nil {
		s.batch = s.batch[:len(s.batch)-1]
		return err
	}
	s.set[uidl] = true
	return nil
}

func (s *pop3Seen) store(key string, uidls []string) error {
	if uidls == nil {
		uidls = []string{}
	}
	b, err := json.Marshal(pop3SeenValue{V: 1, Gen: s.gen, UIDLs: uidls})
	if err != nil {
		return err
	}
	if err := s.st.Store(key, string(b)); err != nil {
		return fmt.Errorf("save the POP3 Mail Loop's record of handled messages: %w", err)
	}
	return nil
}
