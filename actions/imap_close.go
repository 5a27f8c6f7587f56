package actions

import (
	"context"
	"fmt"
)

// IMAPClose is the "IMAP Close" action: it logs out and closes a connection opened by IMAP
// Open, and forgets its name.
type IMAPClose struct{}

// NewIMAPClose returns the IMAP Close action.
func NewIMAPClose() Action { return IMAPClose{} }

// Schema implements Action.
func (IMAPClose) Schema() Schema {
	return Schema{
		ID:    "imap.close",
		Title: "IMAP Close",
		Group: "IMAP",
		Help: "Logs out (LOGOUT) and closes an IMAP connection opened by IMAP Open. Later steps can no longer use its name until another IMAP Open. " +
			"Connections still open at the end of a run are closed anyway; this step frees the connection earlier. " +
			"Closing a connection that is not open is an error unless \"Ignore missing\" is set; a server that does not answer LOGOUT (it may have dropped the connection already) is only logged.",
		Params: []Param{
			ConnectionParam("imap"),
			{Name: "ignore_missing", Label: "Ignore missing", Kind: KindBool, Default: "false",
				Help: "true: do nothing (and succeed) when no connection of that name is open."},
		},
		Sessions: "imap",
	}
}

// Run implements Action.
func (IMAPClose) Run(ctx context.Context, env *Env) error {
	name := env.Params.String("connection")
	if name == "" {
		name = DefaultIMAPConnection
	}
	if env.Sessions != nil {
		if _, open := env.Sessions.Get(name); !open && env.Params.Bool("ignore_missing") {
			env.Logger().Info("no connection of that name is open; nothing to close", "connection", name)
			return nil
		}
	}
	s, err := Lookup[*IMAPSession](env.Sessions, name, "imap")
	if err != nil {
		return fmt.Errorf("imap close: %w", err)
	}
	env.Sessions.Remove(name)
	stop := s.Watch(ctx)
	err = s.Close()
	stop()
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("imap close %q: %w", name, cerr)
	}
	if err != nil {
		// The connection is closed and forgotten either way, and nothing of the mailbox
		// depends on the LOGOUT answer (a server that dropped an idle connection, say).
		env.Logger().Warn("closed connection to "+s.Server+"; the server did not answer LOGOUT", "connection", name, "error", err.Error())
		return nil
	}
	env.Logger().Info("closed connection to "+s.Server, "connection", name)
	return nil
}
