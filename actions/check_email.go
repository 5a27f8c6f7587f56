package actions

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"

	"github.com/emersion/go-imap/v2"
)

// CheckEmail is "Check for Email": connect, count the messages that match, set
// NewMailCount, disconnect. One STATUS command when nothing changed, so it is cheap enough
// to run every minute.
type CheckEmail struct{}

// NewCheckEmail returns the Check for Email action.
func NewCheckEmail() Action { return CheckEmail{} }

// The counting modes of Check for Email.
const (
	CheckNew    = "new"    // messages that arrived since the last check
	CheckUnseen = "unseen" // IMAP: messages without \Seen
	CheckAll    = "all"    // every message in the folder / maildrop
)

// Schema implements Action.
func (CheckEmail) Schema() Schema {
	params := []Param{
		{Name: "protocol", Label: "Protocol", Kind: KindEnum, Default: "imap", Choices: []string{"imap", "pop3"}, Help: "How to reach the mailbox."},
	}
	for _, p := range ConnParams("imap", false) {
		if p.Name == "port" {
			p.Default = ""
			p.Help = "Server port; empty means the usual one: IMAP 993 (tls) or 143 (starttls), POP3 995 (tls) or 110 (starttls)."
		}
		params = append(params, p)
	}
	params = append(params,
		Param{Name: "folder", Label: "Folder", Kind: KindText, Default: "INBOX", Help: "IMAP folder to check (POP3 has only the one maildrop)."},
		Param{Name: "count", Label: "Count", Kind: KindEnum, Default: CheckNew, Choices: []string{CheckNew, CheckUnseen, CheckAll},
			Help: "new: messages that arrived since the last check of this task (IMAP by UID, POP3 by UIDL); unseen: IMAP messages not yet read; all: every message."},
		Param{Name: "first_check", Label: "On the first check", Kind: KindEnum, Default: "count_all", Choices: []string{"count_all", "count_none"}, Advanced: true,
			Help: "With count new and no earlier check: count_all counts every message as new, count_none only remembers where the mailbox stands."},
	)
	return Schema{ID: "email.check", Title: "Check for Email", Group: "Email",
		Help:   "Connects to an IMAP or POP3 mailbox, counts the messages that match and disconnects. Use it as a cheap first step: run the rest of the task only when NewMailCount is above zero.",
		Params: params,
		Outputs: []Output{
			{Name: "NewMailCount", Help: "Messages that match the Count setting."},
			{Name: "TotalCount", Help: "Messages in the folder (IMAP) or maildrop (POP3)."},
			{Name: "UnseenCount", Help: "IMAP only: messages without \\Seen."},
		}}
}

// checkState is what Check for Email remembers between runs for "new".
type checkState struct {
	UIDValidity uint32   `json:"uidvalidity,omitempty"`
	UIDNext     imap.UID `json:"uidnext,omitempty"`
	UIDLs       []string `json:"uidls,omitempty"`
}

// Run implements Action.
func (CheckEmail) Run(ctx context.Context, env *Env) error {
	proto := env.Params.String("protocol")
	v := Values{}
	for k, val := range env.Params {
		v[k] = val
	}
	if v["port"] == "" {
		v["port"] = checkDefaultPort(proto, Security(v["security"]))
	}
	cc, err := ParseConn(proto, v)
	if err != nil {
		return err
	}
	mode := env.Params.String("count")
	if mode == CheckNew && env.State == nil {
		return fmt.Errorf("check for email: count new needs the run's checkpoint store (run the step inside a task)")
	}
	if proto == "pop3" {
		return checkPOP3(ctx, env, cc, mode)
	}
	return checkIMAP(ctx, env, cc, mode)
}

func checkDefaultPort(proto string, sec Security) string {
	tls := sec == "" || sec == SecurityTLS
	switch {
	case proto == "pop3" && tls:
		return "995"
	case proto == "pop3":
		return "110"
	case tls:
		return "993"
	}
	return "143"
}

// checkKey names the checkpoint of one mailbox.
func checkKey(cc ConnConfig, user, folder string) string {
	return "email.check:" + cc.Protocol + ":" + user + "@" + cc.Addr() + "/" + folder
}

func (s checkState) load(env *Env, key string) (checkState, bool, error) {
	raw, ok, err := env.State.Load(key)
	if err != nil || !ok {
		return checkState{}, false, err
	}
	if err := json.Unmarshal([]byte(raw), &s); err != nil {
		env.Logger().Warn("check for email: unreadable checkpoint; starting afresh", "error", err.Error())
		return checkState{}, false, nil
	}
	return s, true, nil
}

func (s checkState) save(env *Env, key string) error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	return env.State.Store(key, string(b))
}

func checkIMAP(ctx context.Context, env *Env, cc ConnConfig, mode string) error {
	s, err := imapOpenSession(ctx, "check", cc, env.Tokens, `try again later, or raise "Timeout"`)
	if err != nil {
		return err
	}
	c := s.Client
	defer s.Close()
	defer s.Watch(ctx)()
	folder := imapFolderName(env.Params.String("folder"))
	st, err := c.Status(folder, &imap.StatusOptions{NumMessages: true, NumUnseen: true, UIDNext: true, UIDValidity: true}).Wait()
	if err != nil {
		return fmt.Errorf("check for email in %q on %s: %w", folder, cc.Addr(), imapFolderError(ctx, s, folder, err))
	}
	total, unseen := derefU32(st.NumMessages), derefU32(st.NumUnseen)
	env.SetVar("TotalCount", strconv.Itoa(int(total)))
	env.SetVar("UnseenCount", strconv.Itoa(int(unseen)))
	n := 0
	switch mode {
	case CheckAll:
		n = int(total)
	case CheckUnseen:
		n = int(unseen)
	default:
		key := checkKey(cc, imapUserOf(cc, env), folder)
		prev, had, err := checkState{}.load(env, key)
		if err != nil {
			return err
		}
		now := checkState{UIDValidity: st.UIDValidity, UIDNext: st.UIDNext}
		switch {
		case !had && env.Params.String("first_check") == "count_none":
			n = 0
		case !had || prev.UIDValidity != st.UIDValidity:
			if had {
				env.Logger().Warn("check for email: the folder was recreated (UIDVALIDITY changed); counting every message as new", "folder", folder)
			}
			n = int(total)
		case prev.UIDNext == st.UIDNext:
			n = 0 // nothing arrived: no SELECT needed
		default:
			if n, err = checkIMAPSince(ctx, s, folder, prev.UIDNext); err != nil {
				return fmt.Errorf("check for email in %q on %s: %w", folder, cc.Addr(), imapCtxErr(ctx, s, err))
			}
		}
		if err := now.save(env, key); err != nil {
			return err
		}
	}
	env.SetVar("NewMailCount", strconv.Itoa(n))
	env.Logger().Info("checked for email", "server", cc.Addr(), "folder", folder, "count", mode, "matching", n, "total", total)
	return nil
}

// checkIMAPSince counts the messages with a UID of at least from (EXAMINE, UID SEARCH).
func checkIMAPSince(ctx context.Context, s *IMAPSession, folder string, from imap.UID) (int, error) {
	if _, err := s.Client.Select(folder, &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		return 0, err
	}
	var set imap.UIDSet
	set.AddRange(from, 0) // from:*
	data, err := s.Client.UIDSearch(&imap.SearchCriteria{UID: []imap.UIDSet{set}}, nil).Wait()
	if err != nil {
		return 0, err
	}
	n := 0
	for _, uid := range data.AllUIDs() {
		if uid >= from { // "n:*" also matches the last message when every UID is below n
			n++
		}
	}
	return n, nil
}

// imapUserOf names the account for the checkpoint key.
func imapUserOf(cc ConnConfig, env *Env) string {
	if cc.User != "" || cc.Auth != AuthOAuth || env.Tokens == nil {
		return cc.User
	}
	if acct, err := env.Tokens.Account(cc.ParamSet); err == nil {
		return acct
	}
	return cc.ParamSet
}

func derefU32(p *uint32) uint32 {
	if p == nil {
		return 0
	}
	return *p
}

func checkPOP3(ctx context.Context, env *Env, cc ConnConfig, mode string) error {
	if mode == CheckUnseen {
		return fmt.Errorf("check for email: POP3 has no seen flag: choose count new or all")
	}
	cfg, err := cc.TLSConfig()
	if err != nil {
		return err
	}
	c, err := DialPOP3(ctx, POP3Dial{Host: cc.Host, Port: cc.Port, Security: cc.Security, TLSConfig: cfg, Timeout: cc.Timeout})
	if err != nil {
		return fmt.Errorf("%w%s", err, pop3OpenHint(cc.Security, err))
	}
	s := NewPOP3Session("check", cc.Addr(), c)
	defer s.Close()
	defer s.Watch(ctx)()
	if err := cc.Login(ctx, env.Tokens, pop3LoginFunc(c, cc)); err != nil {
		return pop3CtxErr(ctx, err)
	}
	total, _, err := c.Stat()
	if err != nil {
		return pop3CtxErr(ctx, fmt.Errorf("pop3 STAT on %s: %w", cc.Addr(), err))
	}
	env.SetVar("TotalCount", strconv.Itoa(total))
	env.SetVar("UnseenCount", "")
	n := total
	if mode == CheckNew {
		entries, err := c.UIDLs()
		if err != nil {
			return pop3CtxErr(ctx, fmt.Errorf("pop3 UIDL on %s: %w", cc.Addr(), err))
		}
		key := checkKey(cc, imapUserOf(cc, env), "")
		prev, had, err := checkState{}.load(env, key)
		if err != nil {
			return err
		}
		seen := map[string]bool{}
		for _, u := range prev.UIDLs {
			seen[u] = true
		}
		now := checkState{UIDLs: make([]string, 0, len(entries))}
		n = 0
		for _, e := range entries {
			if !seen[e.UIDL] {
				n++
			}
			now.UIDLs = append(now.UIDLs, e.UIDL)
		}
		if !had && env.Params.String("first_check") == "count_none" {
			n = 0
		}
		slices.Sort(now.UIDLs)
		if err := now.save(env, key); err != nil {
			return err
		}
	}
	env.SetVar("NewMailCount", strconv.Itoa(n))
	env.Logger().Info("checked for email", "server", cc.Addr(), "count", mode, "matching", n, "total", total)
	return nil
}
