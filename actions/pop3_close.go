package actions

import (
	"context"
	"fmt"
	"strconv"
)

// POP3Close is the "POP3 Close" action: it ends a POP3 session with QUIT, which makes the
// server delete the messages marked for deletion in it.
type POP3Close struct{}

// NewPOP3Close returns the POP3 Close action.
func NewPOP3Close() Action { return POP3Close{} }

// Schema implements Action.
func (POP3Close) Schema() Schema {
	return Schema{
		ID:    "pop3.close",
		Title: "POP3 Close",
		Group: "POP3",
		Help: "Ends the POP3 connection with QUIT. Only now does the server delete the messages that POP3 Delete Email marked; " +
			"if the connection was lost before, nothing is deleted and the step fails saying so. Connections still open at the end of the run are closed the same way.",
		Params:   []Param{ConnectionParam("pop3")},
		Outputs:  []Output{{Name: "DeletedCount", Help: "Number of messages the server deleted at QUIT."}},
		Sessions: "pop3",
	}
}

// Run implements Action.
func (POP3Close) Run(ctx context.Context, env *Env) error {
	s, err := POP3For(env)
	if err != nil {
		return err
	}
	env.Sessions.Remove(s.Name)
	stop := s.Watch(ctx)
	n, err := s.Quit()
	stop()
	if err != nil {
		return pop3CtxErr(ctx, err)
	}
	env.SetVar("DeletedCount", strconv.Itoa(n))
	env.Logger().Info(fmt.Sprintf("pop3 connection closed; %d message(s) deleted", n), "connection", s.Name, "server", s.Server)
	return nil
}
