package actions

import (
	"context"
)

// POP3Delete is the "POP3 Delete Email" action. Inside a POP3 Mail Loop, deleting the
// loop's message is deferred until every step of the loop's body has succeeded for it;
// other messages are marked at once. The server deletes marked messages at QUIT.
type POP3Delete struct{}

// NewPOP3Delete returns the POP3 Delete Email action.
func NewPOP3Delete() Action { return POP3Delete{} }

// Schema implements Action.
func (POP3Delete) Schema() Schema {
	return Schema{
		ID:    "pop3.delete",
		Title: "POP3 Delete Email",
		Group: "POP3",
		Help: "Deletes a message from the POP3 mailbox. Inside a POP3 Mail Loop, the loop's message is marked for deletion only after all steps of the loop body succeeded for it " +
			"(if one fails, the message stays). The server removes marked messages when the connection ends with POP3 Close or at the end of the run; if the connection is lost first, nothing is deleted " +
			"(a POP3 Mail Loop with \"Only new messages\" then deletes its messages whose deletion was lost at its next run).",
		Params: []Param{
			ConnectionParam("pop3"),
			{Name: "number", Label: "Message number", Kind: KindNumber,
				Help: "Number of the message in this connection (1 = oldest). Empty: the current message of the POP3 Mail Loop."},
		},
		Sessions: "pop3",
	}
}

// Run implements Action.
func (POP3Delete) Run(ctx context.Context, env *Env) error {
	s, err := POP3For(env)
	if err != nil {
		return err
	}
	tgt, err := pop3TargetOf(env, s)
	if err != nil {
		return err
	}
	if env.SkipDryRun("delete a POP3 message", "number", tgt.Number, "uidl", tgt.UIDL) {
		return nil
	}
	log := env.Logger()
	if s.DeferDelete(tgt.Number) {
		log.Info("pop3 delete deferred until the loop's steps for this message succeed", "connection", s.Name, "number", tgt.Number, "uidl", tgt.UIDL)
		return nil
	}
	defer s.Watch(ctx)()
	if err := s.Delete(tgt.Number); err != nil {
		return pop3CtxErr(ctx, err)
	}
	log.Info("pop3 message marked for deletion (deleted at QUIT)", "connection", s.Name, "number", tgt.Number)
	return nil
}
