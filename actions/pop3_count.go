package actions

import (
	"context"
	"fmt"
	"strconv"
)

// POP3Count is the "POP3 Messages Count" action: STAT.
type POP3Count struct{}

// NewPOP3Count returns the POP3 Messages Count action.
func NewPOP3Count() Action { return POP3Count{} }

// Schema implements Action.
func (POP3Count) Schema() Schema {
	return Schema{
		ID:     "pop3.count",
		Title:  "POP3 Messages Count",
		Group:  "POP3",
		Help:   "Counts the messages in the POP3 mailbox and their total size. Messages marked for deletion in this connection are not counted.",
		Params: []Param{ConnectionParam("pop3")},
		Outputs: []Output{
			{Name: "MessageCount", Help: "Number of messages in the mailbox."},
			{Name: "MailboxSize", Help: "Total size of the messages in bytes."},
		},
		Sessions: "pop3",
	}
}

// Run implements Action.
func (POP3Count) Run(ctx context.Context, env *Env) error {
	s, err := POP3For(env)
	if err != nil {
		return err
	}
	defer s.Watch(ctx)()
	n, size, err := s.Client.Stat()
	if err != nil {
		return pop3CtxErr(ctx, fmt.Errorf("pop3 STAT on %s: %w", s.Server, err))
	}
	env.SetVar("MessageCount", strconv.Itoa(n))
	env.SetVar("MailboxSize", strconv.FormatInt(size, 10))
	env.Logger().Info("pop3 mailbox counted", "connection", s.Name, "messages", n, "bytes", size)
	return nil
}
