// Command smtpbare is the go-smtp baseline of the SMTP benchmark (issue 7): one session
// with a go-smtp v0.25 client, then MAIL FROM, RCPT TO and DATA of the same message -n
// times, then QUIT. No TLS and no login, like the benchmark's other senders: the sink
// it talks to is a plain local relay.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"log"
	"os"

	"github.com/emersion/go-smtp"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:25", "SMTP server host:port (plain)")
	n := flag.Int("n", 1000, "messages to send")
	msgFile := flag.String("msg", "", "the message to send (RFC 5322, CRLF line ends)")
	from := flag.String("from", "sender@example.test", "envelope sender")
	to := flag.String("to", "recipient@example.test", "envelope recipient")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("smtpbare: ")
	msg, err := os.ReadFile(*msgFile)
	if err != nil {
		log.Fatal(err)
	}
	c, err := smtp.Dial(*addr)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("localhost"); err != nil {
		log.Fatal(err)
	}
	for i := range *n {
		if err := c.Mail(*from, nil); err != nil {
			log.Fatalf("message %d: MAIL: %v", i+1, err)
		}
		if err := c.Rcpt(*to, nil); err != nil {
			log.Fatalf("message %d: RCPT: %v", i+1, err)
		}
		w, err := c.Data()
		if err != nil {
			log.Fatalf("message %d: DATA: %v", i+1, err)
		}
		if _, err := bytes.NewReader(msg).WriteTo(w); err != nil {
			log.Fatalf("message %d: DATA: %v", i+1, err)
		}
		if err := w.Close(); err != nil {
			log.Fatalf("message %d: end of DATA: %v", i+1, err)
		}
	}
	if err := c.Quit(); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%d messages of %d bytes\n", *n, len(msg))
}
