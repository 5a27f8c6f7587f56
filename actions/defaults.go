package actions

// NewDefaultRegistry returns a registry with every action Mailwright ships, in palette
// order. The app and the CLI build one each; tests build their own.
func NewDefaultRegistry() *Registry {
	r := NewRegistry()
	err := r.Register(
		NewIMAPOpen(), NewIMAPClose(), NewIMAPSelect(), NewIMAPFolderInfo(),
		NewIMAPMailLoop(), NewIMAPDownload(), NewIMAPGetFlags(), NewIMAPSetFlags(), NewIMAPDeleteMarked(), NewIMAPMove(),
		NewPOP3Open(), NewPOP3Close(), NewPOP3Count(), NewPOP3MailLoop(), NewPOP3Download(), NewPOP3Delete(),
		NewParseEmail(), NewCheckEmail(), NewSMTPSend(),
	)
	if err != nil {
		// The shipped schemas are checked by TestDefaultRegistry; reaching this is a
		// programming error, not a user's.
		panic(err)
	}
	return r
}
